"""Kubernetes manifests of the generated service: deploy/k8s, its deploy jobs and scripts/k8s-deploy.

Each overlay of each answer combination is rendered once with `kubectl kustomize`; the tests then
read the rendered objects the way the cluster would receive them. Built-in kinds are validated
against the Kubernetes OpenAPI schemas (strict, 1.31 to 1.34); the External Secrets objects, whose
CRDs no offline schema covers, get the field checks below. Every assertion names its practice
(../shared/practices.md): K8S-1..K8S-6, PSS for Pod Security Standards `restricted`, CI-4/CI-5 for
the deploy jobs, OPS-1/OPS-2 for the runbook.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import answers_of, output, run, tool

ENVIRONMENTS = ("dev", "prod")
KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34")

# The only kinds without a built-in schema the manifests may use (External Secrets Operator).
CUSTOM_KINDS = {
    ("external-secrets.io/v1", "ExternalSecret"),
    ("external-secrets.io/v1", "SecretStore"),
    ("generators.external-secrets.io/v1alpha1", "ECRAuthorizationToken"),
}

# Fixed by docs/CONTRACTS.md.
CONTRACT_PORT = 8000
SERVICE_PORT = 80
CONFIG_KEYS = {"ENVIRONMENT", "LOG_LEVEL", "PROJECT_NAME"}
# uvicorn options the manifests set through the environment (UVICORN_ prefix, checked at 0.54.0).
UVICORN_OPTIONS = {"UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"}
SECRET_ENV = {"SECRET_KEY": ("app-secret", "secret-key")}
# The database URL reaches the app as a file of db-app-secret, re-read on every new connection (RUN-2).
DATABASE_URL_FILE = "/var/run/secrets/db/url"
MIGRATION_COMMAND = ["alembic", "upgrade", "head"]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

Manifest = dict[str, Any]


# --- Rendering -------------------------------------------------------------------------------


def binary(name: str) -> str:
    """A tool of this template's virtualenv (kubectl, trivy), else the harness's lookup."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else tool(name)


_RENDERED: dict[tuple[Path, str], list[Manifest]] = {}


def render(service: Path, env: str) -> list[Manifest]:
    key = (service, env)
    if key not in _RENDERED:
        proc = run([binary("kubectl"), "kustomize", f"deploy/k8s/overlays/{env}"], cwd=service)
        assert proc.returncode == 0, f"kubectl kustomize cannot render overlays/{env}\n{output(proc)}"
        _RENDERED[key] = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    return _RENDERED[key]


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def objects(service: Path, env: str) -> list[Manifest]:
    return render(service, env)


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployment(objects: list[Manifest], service: Path) -> Manifest:
    return one(objects, "Deployment", answers_of(service)["project_slug"])


def pod_spec(objects: list[Manifest], service: Path) -> Manifest:
    return deployment(objects, service)["spec"]["template"]["spec"]


def all_containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def app_container(spec: Manifest) -> Manifest:
    (app,) = [c for c in spec["containers"] if c["name"] == "app"]
    return app


def dockerfile_port(service: Path) -> int:
    """The port the image's server listens on: the Dockerfile's CMD when it exists, else CONTRACTS.md."""
    dockerfile = service / "Dockerfile"
    if not dockerfile.exists():
        return CONTRACT_PORT
    commands = re.findall(r"^CMD\s+(.+)$", dockerfile.read_text(), flags=re.MULTILINE)
    assert commands, "K8S-1: the Dockerfile has no CMD to read the server's port from"
    found = re.search(r"--port[\"',\s=]+(\d+)", commands[-1])
    assert found, f"K8S-1: the Dockerfile's CMD does not say its port: {commands[-1]}"
    return int(found.group(1))


def container_port(container: Manifest, port: int | str) -> int:
    """A probe's or Service's port, named or numeric, as the container's port number."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"K8S-1: port name {port!r} is not a port of container {container['name']}"
    return named[port]


# --- Rendering and schemas -------------------------------------------------------------------


def test_overlays_render_without_template_residue(service: Path, objects: list[Manifest]) -> None:
    assert objects, "the overlay renders no object"
    for path in sorted((service / "deploy").rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text()
        # External Secrets templates are Go templates and start with `.`, `(` or printf; anything
        # else between braces is Jinja that copier left behind.
        residue = re.findall(r"\{%|%\}|\{#|\{\{(?!\s*[.(]|\s*printf)[^}]*\}\}", text)
        assert not residue, f"{path.relative_to(service)} keeps template residue: {residue}"


def test_strict_validation_rejects_unknown_fields() -> None:
    """The schema check below means something: strict mode refuses a misspelt field."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targetPrt": 8000}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.34", strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_validate_strictly(objects: list[Manifest], version: str) -> None:
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        name = f"{obj['kind']} {obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{name}: {obj['apiVersion']} is not a built-in kind of Kubernetes {version}")
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name} is invalid for Kubernetes {version}: {error}")


def test_custom_resources_are_only_external_secrets(objects: list[Manifest]) -> None:
    for obj in objects:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if "." in group and not group.endswith("k8s.io"):
            assert (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS, (
                f"K8S-5: {obj['apiVersion']} {obj['kind']} is a custom kind with no checks in this module"
            )


def test_names_are_dns_labels(objects: list[Manifest], service: Path, env: str) -> None:
    for obj in objects:
        name = obj["metadata"]["name"]
        assert len(name) <= 63 and DNS_LABEL.match(name), (
            f"K8S names: {obj['kind']} name {name!r} is not a DNS-1123 label of at most 63 characters"
        )
        if "namespace" in obj["metadata"]:
            assert obj["metadata"]["namespace"] == answers_of(service)["k8s_namespace"]
    for rule in one(objects, "Ingress")["spec"]["rules"]:
        for label in rule["host"].split("."):
            assert 0 < len(label) <= 63, f"K8S names: host {rule['host']} has a label over 63 characters"


# --- External Secrets (K8S-5, K8S-6) ---------------------------------------------------------


def test_no_plaintext_secret(objects: list[Manifest], service: Path) -> None:
    secrets = [o["metadata"]["name"] for o in of_kind(objects, "Secret")]
    assert not secrets, f"K8S-5: Secret objects in the manifests would sit in plaintext in git: {secrets}"
    for path in (service / "deploy").rglob("*.yaml"):
        assert "kind: Secret\n" not in path.read_text(), f"K8S-5: {path} defines a plaintext Secret"


def test_secret_store_uses_controller_pod_identity(objects: list[Manifest], service: Path) -> None:
    store = one(objects, "SecretStore")
    aws = store["spec"]["provider"]["aws"]
    assert aws["service"] == "SecretsManager", "K8S-5: the SecretStore must read AWS Secrets Manager"
    assert aws["region"] == answers_of(service)["aws_region"], "K8S-5: SecretStore region is not aws_region"
    assert "auth" not in aws and "role" not in aws, (
        "K8S-5: the SecretStore must use the controller's Pod Identity (no auth block, no static keys)"
    )


def external_secret_keys(external_secret: Manifest) -> set[str] | None:
    """Keys of the Secret an ExternalSecret builds; None when they depend on the remote data."""
    target = external_secret["spec"].get("target", {})
    template = target.get("template")
    if template and template.get("mergePolicy", "Replace") == "Replace" and template.get("data"):
        return set(template["data"])
    if external_secret["spec"].get("dataFrom"):
        return None
    return {d["secretKey"] for d in external_secret["spec"].get("data", [])}


def test_external_secrets_have_required_fields(objects: list[Manifest]) -> None:
    stores = {o["metadata"]["name"] for o in of_kind(objects, "SecretStore")}
    generators = {(o["kind"], o["metadata"]["name"]) for o in objects if o["apiVersion"].startswith("generators.")}
    for es in of_kind(objects, "ExternalSecret"):
        name = es["metadata"]["name"]
        spec = es["spec"]
        assert spec.get("refreshInterval") not in (None, "0", "0s"), f"K8S-5: ExternalSecret {name} never refreshes"
        assert spec.get("target", {}).get("name"), f"K8S-5: ExternalSecret {name} has no target.name"
        assert spec.get("data") or spec.get("dataFrom"), f"K8S-5: ExternalSecret {name} reads nothing"
        uses_store = bool(spec.get("data"))
        for item in spec.get("data", []):
            assert item.get("secretKey") and item.get("remoteRef", {}).get("key"), (
                f"K8S-5: ExternalSecret {name} data items need secretKey and remoteRef.key"
            )
        for item in spec.get("dataFrom", []):
            sources = [k for k in ("extract", "find", "sourceRef") if k in item]
            assert len(sources) == 1, f"K8S-5: ExternalSecret {name} dataFrom item needs one of extract/find/sourceRef"
            if "extract" in item:
                assert item["extract"].get("key"), f"K8S-5: ExternalSecret {name} extract needs a key"
                uses_store = True
            if "find" in item:
                assert item["find"].get("tags") or item["find"].get("name"), (
                    f"K8S-5: ExternalSecret {name} find needs tags or name"
                )
                uses_store = True
            if "sourceRef" in item:
                ref = item["sourceRef"]["generatorRef"]
                assert (ref["kind"], ref["name"]) in generators, (
                    f"K8S-6: ExternalSecret {name} uses generator {ref['kind']}/{ref['name']}, which is not defined"
                )
            for rewrite in item.get("rewrite", []):
                assert set(rewrite.get("regexp", {})) == {"source", "target"}, (
                    f"K8S-5: ExternalSecret {name} regexp rewrite needs source and target"
                )
        if uses_store:
            ref = spec.get("secretStoreRef", {})
            assert ref.get("kind", "SecretStore") == "SecretStore" and ref.get("name") in stores, (
                f"K8S-5: ExternalSecret {name} points at SecretStore {ref.get('name')!r}, which is not defined"
            )
        template = spec.get("target", {}).get("template")
        if template:
            assert template.get("engineVersion", "v2") == "v2", f"K8S-5: ExternalSecret {name} template is not v2"


def test_database_urls_come_from_each_roles_secret(objects: list[Manifest], service: Path, env: str) -> None:
    """RUN-2: the app's db-app-secret and the migrations' db-migrator-secret come from their roles'
    own secrets; only db-secret reads the RDS-managed master secret (found by its tag), the name and
    content 0.1.x pods read, so an old pod that restarts during the upgrade still connects."""
    answers = answers_of(service)
    slug, region, account = answers["project_slug"], answers["aws_region"], answers["ecr_account_id"]
    arn = f"arn:aws:rds:{region}:{account}:db:{slug}-{env}"
    sources = {
        "db-app-secret": (f"{slug}/{env}/database-app", ".username", ".password"),
        "db-migrator-secret": (f"{slug}/{env}/database-migrator", ".username", ".password"),
        "db-secret": (None, ").username", ").password"),
    }
    for name, (role_secret, user_field, password_field) in sources.items():
        es = one(objects, "ExternalSecret", name)
        assert es["spec"]["target"]["name"] == name
        assert es["spec"]["refreshInterval"] == "1m", f"RUN-2: {name} must follow a rotation within a minute"
        data_from = es["spec"]["dataFrom"]
        finds = [s["find"] for s in data_from if "find" in s]
        extracts = [s["extract"]["key"] for s in data_from if "extract" in s]
        if role_secret is None:
            assert finds == [{"tags": {"aws:rds:primaryDBInstanceArn": arn}}], (
                f"K8S-5: {name} must find the RDS-managed secret by its tag aws:rds:primaryDBInstanceArn={arn}"
            )
            assert extracts == [f"{slug}/{env}/database"], f"K8S-5: {name} reads {slug}/{env}/database"
        else:
            assert not finds, f"RUN-2: {name} must not read the master user's secret"
            assert extracts == [role_secret, f"{slug}/{env}/database"], f"RUN-2: {name} reads {role_secret}"
        url = es["spec"]["target"]["template"]["data"]["url"]
        assert url.startswith("postgresql+psycopg://"), "K8S-5: DATABASE_URL must be a postgresql+psycopg URL"
        for field in (".host", ".port", ".dbname", user_field, password_field):
            assert field in url, f"K8S-5: the {name} url template does not use {field}"
        assert url.count("urlquery") == 2, "K8S-5: the user name and password must be URL-encoded"
    app = one(objects, "ExternalSecret", "app-secret")
    assert app["spec"]["data"] == [
        {"secretKey": "secret-key", "remoteRef": {"key": f"{slug}/{env}/app", "property": "secret_key"}}
    ], f"K8S-5: app-secret/secret-key must come from {slug}/{env}/app, JSON key secret_key"


def test_the_secret_0_1_pods_read_still_holds_the_master_url(objects: list[Manifest]) -> None:
    """0.1.x pods read DATABASE_URL from db-secret/url as the master user. During the upgrade's
    rollout such a pod may restart before any db-roles made the new roles: db-secret must still be
    built as 0.1.0 built it, or the pod connects as a role that does not exist and crashloops."""
    releases = Path(__file__).parent / "fixtures" / "releases"
    with tarfile.open(releases / "0.1.0.tar.gz") as archive:
        member = archive.extractfile("template/deploy/k8s/base/external-secrets.yaml")
        assert member is not None
        then = {d["metadata"]["name"]: d for d in yaml.safe_load_all(member.read()) if d}
    now = one(objects, "ExternalSecret", "db-secret")
    assert now["spec"]["target"]["template"] == then["db-secret"]["spec"]["target"]["template"], (
        "RUN-2: db-secret/url must stay the master user's URL, as 0.1.x pods read it"
    )
    (found,) = [s for s in now["spec"]["dataFrom"] if "find" in s]
    assert "aws:rds:primaryDBInstanceArn" in found["find"]["tags"], "RUN-2: db-secret reads the RDS master secret"


def test_run2_each_container_connects_as_its_own_role_with_verified_tls(objects: list[Manifest], service: Path) -> None:
    """The master user's URL reaches the db-roles init container only; the migration runs as the
    migrator, the app as the app role (its URL as a file, RUN-2 rotation); all verify RDS's CA."""
    spec = pod_spec(objects, service)
    inits = {c["name"]: c for c in spec["initContainers"]}
    assert [c["name"] for c in spec["initContainers"]] == ["db-roles", "migrate"], (
        "RUN-2: the roles exist (and hold their current passwords) before the migration runs as one of them"
    )

    def secret_refs(container: dict) -> dict[str, tuple[str, str]]:
        return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
                for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}

    def plain(container: dict) -> dict[str, str]:
        return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}

    assert inits["db-roles"]["command"] == ["python", "-m", "app.db.roles"]
    assert secret_refs(inits["db-roles"]) == {
        "DATABASE_URL": ("db-secret", "url"),
        "DATABASE_MIGRATOR_URL": ("db-migrator-secret", "url"),
        "DATABASE_APP_URL": ("db-app-secret", "url"),
    }
    assert secret_refs(inits["migrate"]) == {"DATABASE_URL": ("db-migrator-secret", "url")}, (
        "RUN-2: migrations run as <db>_migrator, never as the master user"
    )
    (app,) = spec["containers"]
    assert '"db-secret"' not in json.dumps(app) and "db-migrator-secret" not in json.dumps(app), (
        "RUN-2: the app container never sees the master or the migrator credentials"
    )
    assert plain(app)["DATABASE_URL_FILE"] == "/var/run/secrets/db/url"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["db-app-secret"]["secret"]["secretName"] == "db-app-secret", "RUN-2: the app's URL is its own role's"
    bundle = "/opt/rds/global-bundle.pem"
    for container in (inits["db-roles"], inits["migrate"], app):
        assert plain(container).get("DATABASE_SSL_ROOT_CERT") == bundle, (
            f"RUN-2: {container['name']} must verify the server against the bundle the image carries ({bundle})"
        )
    dockerfile = (service / "Dockerfile").read_text()
    assert f"COPY --from=builder {bundle} {bundle}" in dockerfile, f"RUN-2: the image must carry {bundle}"


def test_ecr_pull_secret_only_when_asked(objects: list[Manifest], service: Path) -> None:
    wanted = answers_of(service)["use_ecr_pull_secret"]
    spec = pod_spec(objects, service)
    pull_secrets = [s["name"] for s in spec.get("imagePullSecrets", [])]
    generators = of_kind(objects, "ECRAuthorizationToken")
    if not wanted:
        assert not pull_secrets and not generators, (
            "K8S-6: without use_ecr_pull_secret the nodes' IAM role pulls; no pull secret is expected"
        )
        assert not (service / "deploy/k8s/base/ecr-pull-secret.yaml").exists()
        return
    assert pull_secrets == ["ecr-secret"], "K8S-6: the pods must pull with ecr-secret"
    (generator,) = generators
    assert generator["spec"]["region"] == answers_of(service)["aws_region"]
    es = one(objects, "ExternalSecret", "ecr-secret")
    assert es["spec"]["refreshInterval"] == "1h", "K8S-6: the ECR token (12 h) must be refreshed every hour"
    assert es["spec"]["dataFrom"][0]["sourceRef"]["generatorRef"]["kind"] == "ECRAuthorizationToken"
    template = es["spec"]["target"]["template"]
    assert template["type"] == "kubernetes.io/dockerconfigjson", "K8S-6: ecr-secret must be a dockerconfigjson"
    registry = json.loads(re.sub(r"\{\{.*?\}\}", "x", template["data"][".dockerconfigjson"]))["auths"]
    assert list(registry) == [ecr_registry(service)], (
        "K8S-6: ecr-secret must authenticate to the service's ECR registry"
    )


def ecr_registry(service: Path) -> str:
    answers = answers_of(service)
    return f"{answers['ecr_account_id']}.dkr.ecr.{answers['aws_region']}.amazonaws.com"


# --- Cross-references (K8S-5, K8S-1, K8S-4) --------------------------------------------------


def test_every_config_and_secret_reference_resolves(objects: list[Manifest], service: Path) -> None:
    config_maps = {o["metadata"]["name"]: set(o.get("data", {})) for o in of_kind(objects, "ConfigMap")}
    secrets = {
        es["spec"]["target"]["name"]: external_secret_keys(es) for es in of_kind(objects, "ExternalSecret")
    }
    spec = pod_spec(objects, service)
    for container in all_containers(spec):
        where = f"container {container['name']}"
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, (
                    f"K8S-5: {where} envFrom ConfigMap {source['configMapRef']['name']} is not defined"
                )
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, (
                    f"K8S-5: {where} envFrom Secret {source['secretRef']['name']} is not built by an ExternalSecret"
                )
        for var in container.get("env", []):
            ref = var.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                name, key = ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
                assert key in config_maps.get(name, set()), f"K8S-5: {where} reads missing ConfigMap key {name}/{key}"
            if "secretKeyRef" in ref:
                name, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
                assert name in secrets, f"K8S-5: {where} reads Secret {name}, which no ExternalSecret builds"
                assert secrets[name] is None or key in secrets[name], (
                    f"K8S-5: {where} reads key {key} of Secret {name}, which has only {sorted(secrets[name] or [])}"
                )
        mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume_name in mounts:
            assert volume_name in volumes, f"K8S-5: {where} mounts undefined volume {volume_name}"
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            assert volume["configMap"]["name"] in config_maps, f"K8S-5: volume {volume['name']} ConfigMap is not defined"
        if "secret" in volume:
            assert volume["secret"]["secretName"] in secrets, f"K8S-5: volume {volume['name']} Secret is not built"
    for pull in spec.get("imagePullSecrets", []):
        assert pull["name"] in secrets, f"K8S-6: imagePullSecret {pull['name']} is not built by an ExternalSecret"


def test_app_gets_every_setting_of_the_contract(objects: list[Manifest], service: Path, env: str) -> None:
    (config,) = of_kind(objects, "ConfigMap")
    assert set(config["data"]) == CONFIG_KEYS, f"K8S-5: ConfigMap keys must be {sorted(CONFIG_KEYS)} (CONTRACTS.md)"
    assert config["data"]["ENVIRONMENT"] == env, f"K8S-5: ENVIRONMENT must be {env} in overlays/{env}"
    assert config["data"]["PROJECT_NAME"] == answers_of(service)["project_name"]
    assert re.search(r"-[a-z0-9]{10}$", config["metadata"]["name"]), (
        "K8S-5: the ConfigMap must come from a generator with a content hash, so a change rolls the pods"
    )
    app = app_container(pod_spec(objects, service))
    secret_env = {
        v["name"]: (v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
        for v in app.get("env", [])
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    assert secret_env == SECRET_ENV, f"K8S-5: the app's secrets must be {SECRET_ENV} (CONTRACTS.md)"
    spec = pod_spec(objects, service)
    env_values = {v["name"]: v.get("value") for v in app.get("env", [])}
    assert env_values.get("DATABASE_URL_FILE") == DATABASE_URL_FILE, "RUN-2: the app reads the URL from db-app-secret's file"
    mounts = {m["name"]: m for m in app.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    (volume,) = [v for v in volumes.values() if v.get("secret", {}).get("secretName") == "db-app-secret"]
    mount = mounts[volume["name"]]
    assert "subPath" not in mount, "RUN-2: a subPath mount is never updated: a rotated password would not arrive"
    assert mount.get("readOnly") is True
    (item,) = volume["secret"]["items"]
    assert f"{mount['mountPath']}/{item['path']}" == DATABASE_URL_FILE
    assert item["key"] == "url"
    assert volume["secret"].get("defaultMode") == 0o440, "RUN-2: the URL file is readable by the app only"
    db_secret = one(objects, "ExternalSecret", "db-app-secret")
    assert db_secret["spec"]["refreshInterval"] in {"1m", "60s"}, "RUN-2: a rotated password must arrive within minutes"
    # Every variable given to the app is a setting the app reads (a typo would be silently ignored).
    config_py = service / "app/core/config.py"
    if config_py.exists():
        fields = set(re.findall(r"^    (\w+): ", config_py.read_text(), flags=re.MULTILINE))
        # uvicorn reads UVICORN_<OPTION> (click's auto_envvar_prefix in uvicorn/main.py, CONTRACTS.md).
        given = CONFIG_KEYS | set(secret_env) | {v["name"] for v in app.get("env", [])} - UVICORN_OPTIONS
        unread = {name for name in given if name.lower() not in fields}
        assert not unread, f"K8S-5: the app container gets {sorted(unread)}, which app/core/config.py never reads"


def test_ports_agree_with_the_image(objects: list[Manifest], service: Path) -> None:
    port = dockerfile_port(service)
    app = app_container(pod_spec(objects, service))
    assert [p["containerPort"] for p in app["ports"]] == [port], f"K8S-1: the app container must expose {port}"
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe_port = container_port(app, app[probe_name]["httpGet"]["port"])
        assert probe_port == port, f"K8S-1: {probe_name} checks port {probe_port}, the server listens on {port}"
    svc = one(objects, "Service")
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["port"] == SERVICE_PORT, f"OPS-2: the Service must listen on {SERVICE_PORT}"
    assert container_port(app, svc_port["targetPort"]) == port, f"K8S-1: the Service must target port {port}"
    labels = deployment(objects, service)["spec"]["template"]["metadata"]["labels"]
    for selector_owner, selector in (
        ("Service", svc["spec"]["selector"]),
        ("PodDisruptionBudget", one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]),
        ("NetworkPolicy", one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]),
    ):
        assert selector.items() <= labels.items(), f"K8S-1: the {selector_owner} selector does not match the pods"
    (policy_rule,) = one(objects, "NetworkPolicy")["spec"]["ingress"]
    assert [container_port(app, p["port"]) for p in policy_rule["ports"]] == [port], (
        f"K8S-1: the NetworkPolicy must let traffic in on {port}"
    )
    backend = one(objects, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == svc["metadata"]["name"], "K8S-1: the Ingress must send traffic to the Service"
    assert backend["port"].get("name") == svc_port["name"] or backend["port"].get("number") == svc_port["port"]


def test_probes(objects: list[Manifest], service: Path) -> None:
    app = app_container(pod_spec(objects, service))
    liveness, readiness = app["livenessProbe"], app["readinessProbe"]
    assert liveness["httpGet"]["path"] == "/health", "K8S-1: liveness must GET /health"
    assert (liveness["initialDelaySeconds"], liveness["timeoutSeconds"]) == (30, 10), (
        "K8S-1: liveness initialDelaySeconds 30, timeoutSeconds 10"
    )
    assert readiness["httpGet"]["path"] == "/ready", "K8S-1: readiness must GET /ready (CONTRACTS.md)"
    # The kubelet counts initialDelaySeconds from the container's start: with a startupProbe
    # holding readiness back, any delay here only keeps a serving pod out of the load balancer.
    assert readiness.get("initialDelaySeconds", 0) == 0, "RUN-1: readiness must not add a fixed delay to every start"
    assert app["startupProbe"]["httpGet"]["path"] == "/health", "K8S-1: a startupProbe covers slow starts"
    for container in pod_spec(objects, service).get("initContainers", []):
        assert not any(k in container for k in ("livenessProbe", "readinessProbe", "startupProbe"))


def test_init_container_runs_migrations(objects: list[Manifest], service: Path) -> None:
    spec = pod_spec(objects, service)
    inits = {c["name"]: c for c in spec["initContainers"]}
    init = inits["migrate"]
    assert init.get("command", []) + init.get("args", []) == MIGRATION_COMMAND, (
        f"K8S-2: the init container must run exactly `alembic upgrade head`, not {init.get('command')}"
    )
    for container in spec["initContainers"]:
        assert container["image"] == app_container(spec)["image"], (
            f"K8S-2: init container {container['name']} must run from the app's image"
        )
    (url,) = [v for v in init["env"] if v["name"] == "DATABASE_URL"]
    # RUN-2: the migration role's URL; the master user's reaches the db-roles init container only.
    assert url["valueFrom"]["secretKeyRef"] == {"name": "db-migrator-secret", "key": "url"}, (
        "K8S-2: DATABASE_URL of the init container must come from secretKeyRef db-migrator-secret/url"
    )


def test_autoscaler_and_resources(objects: list[Manifest], service: Path, env: str) -> None:
    answers = answers_of(service)
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2", "K8S-4: the HPA must be autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment(objects, service)["metadata"]["name"]), (
        "K8S-4: the HPA must target the Deployment"
    )
    bounds = (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
    if env == "prod":
        expected = (max(2, int(answers["replicas_min"])), answers["replicas_max"])  # type: ignore[call-overload]
        assert bounds == expected, "K8S-4: prod HPA bounds are the answers, RUN-1: never fewer than 2 pods"
    else:
        assert 1 == bounds[0] <= bounds[1] <= answers["replicas_max"], "K8S-4: dev scales from 1 within the answers"
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }, "K8S-4: the HPA scales on CPU 70 % and memory 80 %"
    assert "replicas" not in deployment(objects, service)["spec"], "K8S-4: the HPA, not the Deployment, sets replicas"
    for container in all_containers(pod_spec(objects, service)):
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container.get("resources", {}).get(kind, {})), (
                f"K8S-4: container {container['name']} must declare cpu and memory {kind}"
            )


def test_graceful_shutdown_outlasts_the_load_balancer(objects: list[Manifest], service: Path) -> None:
    """RUN-1: a deleted pod keeps serving until the ALB has stopped sending to it, then drains.

    Kubernetes removes the pod from the endpoints and runs preStop at the same time; the AWS Load
    Balancer Controller then deregisters the target, which takes seconds. SIGTERM comes after
    preStop; uvicorn then finishes in-flight requests; SIGKILL comes at the grace period.
    """
    spec = pod_spec(objects, service)
    app = app_container(spec)
    pre_stop = app.get("lifecycle", {}).get("preStop", {})
    assert "sleep" in pre_stop, "RUN-1: the app container needs a preStop sleep (the image needs no shell for it)"
    delay = int(pre_stop["sleep"]["seconds"])
    assert delay >= 15, f"RUN-1: preStop sleeps {delay} s, less than an ALB deregistration takes to apply"
    env = {v["name"]: v.get("value") for v in app.get("env", [])}
    assert "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN" in env, "RUN-1: uvicorn must bound its graceful shutdown"
    drain = int(env["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"])
    grace = int(spec.get("terminationGracePeriodSeconds", 30))
    assert grace >= delay + drain + 5, (
        f"RUN-1: terminationGracePeriodSeconds {grace} must cover preStop {delay} s + shutdown {drain} s + 5 s"
    )
    ingress = one(objects, "Ingress")["metadata"]["annotations"]
    assert ingress["alb.ingress.kubernetes.io/target-type"] == "ip", "RUN-1: readiness gates need target-type ip"
    attributes = dict(
        kv.split("=", 1) for kv in ingress.get("alb.ingress.kubernetes.io/target-group-attributes", "").split(",") if kv
    )
    deregistration = int(attributes.get("deregistration_delay.timeout_seconds", 300))  # ALB's default
    assert delay + drain <= deregistration < 300, (
        f"RUN-1: the ALB drains a target for {deregistration} s, but the pod may still finish a request "
        f"{delay + drain} s after deletion: the ALB would cut it"
    )
    namespace = one(objects, "Namespace")["metadata"]["labels"]
    assert namespace.get("elbv2.k8s.aws/pod-readiness-gate-inject") == "enabled", (
        "RUN-1: without the namespace label the controller injects no readiness gate and a rollout can outrun the ALB"
    )


def test_replicas_spread_over_zones(objects: list[Manifest], service: Path) -> None:
    spec = pod_spec(objects, service)
    zone = [c for c in spec.get("topologySpreadConstraints", []) if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zone, "RUN-1: replicas must be spread over availability zones"
    assert zone[0]["whenUnsatisfiable"] == "DoNotSchedule" and zone[0]["maxSkew"] == 1, (
        "RUN-1: a zone spread that is only preferred lets every replica land in one zone"
    )
    assert "pod-template-hash" in zone[0].get("matchLabelKeys", []), (
        "RUN-1: count skew per ReplicaSet, or a rollout's old pods block the new ones"
    )


def test_disruption_budget_allows_drains(objects: list[Manifest]) -> None:
    pdb = one(objects, "PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable") == 1 and "minAvailable" not in pdb, (
        "K8S-4: the PDB must let a drain evict one pod even with a single replica (minAvailable would block it)"
    )


# --- RBAC and Pod Security (K8S-3, PSS) ------------------------------------------------------


def test_service_account_and_rbac(objects: list[Manifest], service: Path) -> None:
    slug = answers_of(service)["project_slug"]
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding"), (
        "K8S-3: the service needs no cluster-wide permission"
    )
    for binding in of_kind(objects, "RoleBinding"):
        assert binding["roleRef"]["name"] != "cluster-admin", "K8S-3: never bind cluster-admin"
        assert binding["roleRef"]["kind"] == "Role", "K8S-3: bind a namespaced Role"
    for role in of_kind(objects, "Role"):
        for rule in role.get("rules") or []:
            for field in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(field, []), f"K8S-3: Role {role['metadata']['name']} uses a wildcard {field}"
    sa = one(objects, "ServiceAccount", slug)
    assert sa.get("automountServiceAccountToken") is False, "K8S-3: the ServiceAccount must not mount a token"
    binding = one(objects, "RoleBinding", slug)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": slug, "namespace": sa["metadata"]["namespace"]}]
    spec = pod_spec(objects, service)
    assert spec["serviceAccountName"] == slug, "K8S-3: the pods must run as their own ServiceAccount"
    assert spec.get("automountServiceAccountToken") is False, "K8S-3: the pods must not mount an API token"


def test_pod_security_restricted(objects: list[Manifest], service: Path) -> None:
    namespace = one(objects, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert namespace["metadata"]["name"] == answers_of(service)["k8s_namespace"]
    for mode in ("enforce", "audit", "warn"):
        assert labels.get(f"pod-security.kubernetes.io/{mode}") == "restricted", (
            f"PSS: the namespace must {mode} the restricted profile"
        )
    spec = pod_spec(objects, service)
    pod = spec["securityContext"]
    assert pod.get("runAsNonRoot") is True and pod.get("runAsUser", 0) > 0, "PSS: pods must run as a non-root user"
    assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", "PSS: seccompProfile RuntimeDefault"
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key), f"PSS: {key} is forbidden"
    assert not [v for v in spec.get("volumes", []) if "hostPath" in v], "PSS: hostPath volumes are forbidden"
    for container in all_containers(spec):
        name = container["name"]
        context = container.get("securityContext", {})
        assert context.get("allowPrivilegeEscalation") is False, f"PSS: {name} allowPrivilegeEscalation must be false"
        assert context.get("capabilities", {}).get("drop") == ["ALL"], f"PSS: {name} must drop ALL capabilities"
        assert not context.get("capabilities", {}).get("add"), f"PSS: {name} must add no capability"
        assert not context.get("privileged"), f"PSS: {name} must not be privileged"
        assert context.get("readOnlyRootFilesystem") is True, f"PSS: {name} root filesystem must be read-only"
        assert {m["mountPath"] for m in container.get("volumeMounts", [])} >= {"/tmp"}, (
            f"PSS: {name} has a read-only root and needs its writable /tmp"
        )
        assert not [p for p in container.get("ports", []) if "hostPort" in p], f"PSS: {name} must not use hostPort"
    dockerfile = service / "Dockerfile"
    if dockerfile.exists():
        users = re.findall(r"^USER\s+(\d+)", dockerfile.read_text(), flags=re.MULTILINE)
        if users:
            assert pod["runAsUser"] == int(users[-1]), (
                f"PSS/SEC-3: pods run as {pod['runAsUser']}, the image is built for user {users[-1]}"
            )


# --- Images, overlays, hostnames (CI-4) ------------------------------------------------------


def test_image_is_the_service_repository_with_a_deploy_time_tag(objects: list[Manifest], service: Path) -> None:
    repository = f"{ecr_registry(service)}/{answers_of(service)['project_slug']}"
    for container in all_containers(pod_spec(objects, service)):
        name, _, tag = container["image"].rpartition(":")
        assert name == repository, f"CI-4: {container['name']} must run {repository}, not {name}"
        assert tag and tag != "latest" and not tag.endswith("-candidate"), (
            f"CI-4: {container['name']} tag {tag!r}: deploys use the promoted <sha> only"
        )


def test_ingress_for_the_load_balancer_controller(objects: list[Manifest], service: Path, env: str) -> None:
    answers = answers_of(service)
    ingress = one(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "alb", "TF-5/K8S: the Ingress must use IngressClass alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/ready", "K8S-1: the ALB checks /ready"
    host = f"{answers['project_slug']}.{answers['base_domain']}"
    expected = f"dev.{host}" if env == "dev" else host
    assert [r["host"] for r in ingress["spec"]["rules"]] == [expected], f"the {env} host must be {expected}"
    assert ingress["spec"]["tls"] == [{"hosts": [expected]}], "the ALB must serve HTTPS for the host"


def _differences(left: Any, right: Any, path: str = "") -> Iterator[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right), key=str):
            yield from _differences(left.get(key), right.get(key), f"{path}/{key}")
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            yield from _differences(a, b, f"{path}/{index}")
    elif left != right:
        yield path


# What may differ between overlays: pod count, resources, hostnames, environment name, where the
# secrets live, and the ConfigMap name that follows from its content.
ALLOWED_DIFFERENCES = re.compile(
    r"^(HorizontalPodAutoscaler/[^/]+/spec/(minReplicas|maxReplicas)"
    r"|Deployment/[^/]+/spec/template/spec/containers/\d+/(resources/.*|envFrom/\d+/configMapRef/name)"
    r"|Ingress/[^/]+/spec/(rules/\d+/host|tls/.*)"
    r"|ConfigMap/[^/]+/data/ENVIRONMENT"
    r"|ExternalSecret/(db-app-secret|db-migrator-secret|db-secret|app-secret)/spec/(data|dataFrom)/.*)$"
)


def test_overlays_differ_only_where_environments_differ(service: Path) -> None:
    def keyed(env: str) -> dict[str, Manifest]:
        return {
            f"{o['kind']}/{o['metadata']['name'] if o['kind'] != 'ConfigMap' else 'config'}": o
            for o in render(service, env)
        }

    dev, prod = keyed("dev"), keyed("prod")
    assert dev.keys() == prod.keys(), f"dev and prod define different objects: {dev.keys() ^ prod.keys()}"
    unexpected = [
        f"{key}{path}"
        for key in dev
        for path in _differences(dev[key], prod[key])
        if not ALLOWED_DIFFERENCES.match(f"{key}{path}") and not path.startswith("/metadata/name")
    ]
    assert not unexpected, f"overlays must differ only where environments differ, not in {unexpected}"


# --- Scanners --------------------------------------------------------------------------------


@pytest.fixture
def rendered_dir(service: Path, tmp_path: Path) -> Path:
    for env in ENVIRONMENTS:
        (tmp_path / f"{env}.yaml").write_text(yaml.safe_dump_all(render(service, env), sort_keys=False))
    return tmp_path


def test_checkov_finds_no_failed_check(rendered_dir: Path) -> None:
    # Not --quiet: the JSON report then lists the skipped checks, whose reasons are checked below.
    proc = run(
        [tool("checkov"), "-d", str(rendered_dir), "--framework", "kubernetes", "--skip-download",
         "--compact", "--output", "json"],
    )
    report = json.loads(proc.stdout or "{}")
    reports = report if isinstance(report, list) else [report]
    assert [r.get("check_type") for r in reports] == ["kubernetes"], f"checkov scanned nothing\n{output(proc)}"
    (results,) = [r["results"] for r in reports]
    assert reports[0]["summary"]["passed"] > 0 and reports[0]["summary"]["parsing_errors"] == 0, output(proc)
    failed = [f"{c['check_id']} {c['resource']}" for c in results["failed_checks"]]
    assert not failed and proc.returncode == 0, f"PSS/K8S: checkov failed checks: {failed}\n{output(proc)}"
    for skipped in results["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 8 and re.search(r"\b(K8S|CI|SEC)-\d\b", reason), (
            f"PSS/K8S: checkov suppression {skipped['check_id']} needs a reason naming its practice: {reason!r}"
        )


def test_trivy_config_finds_no_high_or_critical(rendered_dir: Path) -> None:
    proc = run(
        [binary("trivy"), "config", "--skip-check-update", "--quiet", "--severity", "HIGH,CRITICAL",
         "--exit-code", "1", "--format", "json", str(rendered_dir)],
        env={"TRIVY_CACHE_DIR": str(rendered_dir / ".trivy-cache")},
    )
    report = json.loads(proc.stdout or "{}")
    findings = [
        f"{m['ID']} {m['Severity']} {r['Target']}: {m['Title']}"
        for r in report.get("Results", [])
        for m in r.get("Misconfigurations", [])
        if m.get("Status") == "FAIL"
    ]
    assert proc.returncode == 0 and not findings, f"PSS/K8S: trivy config HIGH/CRITICAL findings: {findings}\n{output(proc)}"


# --- Deploy jobs and scripts/k8s-deploy (CI-4, CI-5) -----------------------------------------


def ci_jobs(service: Path) -> dict[str, Any]:
    return yaml.safe_load((service / ".gitlab/ci/kubernetes.yml").read_text())


def test_deploy_jobs_validate_alone(service: Path) -> None:
    proc = run([binary("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", "--data-transform",
                "gitlab-ci", ".gitlab/ci/kubernetes.yml"], cwd=service)
    assert proc.returncode == 0, f"CI: .gitlab/ci/kubernetes.yml is not valid GitLab CI\n{output(proc)}"


def resolved(jobs: dict[str, Any], name: str) -> dict[str, Any]:
    """A job with its `extends` merged the way GitLab does (deep merge of hashes; .aws-oidc is external)."""
    job = jobs[name]
    merged: dict[str, Any] = {}
    parents = job.get("extends", [])
    for parent in [parents] if isinstance(parents, str) else parents:
        if parent in jobs:
            merged = {**merged, **resolved(jobs, parent)}
    return {**merged, **{k: v for k, v in job.items() if k != "extends"}, "extends": parents}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_deploy_job(service: Path, env: str) -> None:
    jobs = ci_jobs(service)
    job = resolved(jobs, f"deploy-{env}")
    assert job["stage"] == "deploy", "CONTRACTS: deploy jobs run in stage deploy"
    assert f".aws-{env}" in job["extends"], f"CI-1: deploy-{env} gets the {env} role through .aws-{env}"
    assert "DEPLOY_ENV" not in (job.get("variables") or {}), "CI-2: a pipeline variable would override DEPLOY_ENV"
    assert job["image"]["entrypoint"] == [""], "CI-5: the tool image's entrypoint must be reset"
    image_tag = job["image"]["name"].split("@")[0].rpartition(":")[2]
    assert re.fullmatch(r"\d+\.\d+\.\d+", image_tag), f"CI-5: the deploy image must be pinned, not {image_tag!r}"
    assert job["script"] == ['scripts/k8s-deploy "$DEPLOY_ENV" "$CI_COMMIT_SHA"'], (
        "CI-4: the deploy job must deploy the promoted full $CI_COMMIT_SHA through scripts/k8s-deploy"
    )
    assert job.get("interruptible") is False and job.get("resource_group"), "deploys are never interrupted or run twice"
    text = (service / ".gitlab/ci/kubernetes.yml").read_text()
    assert "latest" not in text and "-candidate" not in text and "CI_COMMIT_SHORT_SHA" not in text, (
        "CI-4: deploys use the promoted <sha> tag, never latest or -candidate"
    )
    if env == "prod":
        conditions = [r.get("if") for r in job["rules"] if r.get("when") != "never"]
        assert conditions == ["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"], (
            "CI-1: production deploys only from the protected default branch"
        )


@pytest.fixture
def fake_cluster(tmp_path: Path) -> Path:
    """`aws` and `kubectl` stand-ins: ECR answers a digest, `kubectl apply -k` renders to a file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(
        "#!/usr/bin/env bash\n"
        'echo "aws $*" >> "$FAKE_LOG"\n'
        'if [ "$2" = describe-images ]; then\n'
        '  [ -n "${FAKE_ECR_MISSING:-}" ] && { echo "ImageNotFoundException" >&2; exit 254; }\n'
        '  echo "sha256:$(printf a%.0s {1..64})"\n'
        'fi\n'
    )
    (bin_dir / "kubectl").write_text(
        "#!/usr/bin/env bash\n"
        'echo "kubectl $*" >> "$FAKE_LOG"\n'
        'if [ "$1" = apply ] && [ "$2" = -k ]; then exec "$REAL_KUBECTL" kustomize "$3" > "$FAKE_APPLIED"; fi\n'
    )
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    return bin_dir


def test_deploy_script_pins_the_promoted_digest(service: Path, fake_cluster: Path, tmp_path: Path) -> None:
    answers = answers_of(service)
    sha = "0123456789abcdef0123456789abcdef01234567"
    log, applied = tmp_path / "calls.log", tmp_path / "applied.yaml"
    proc = run(
        ["scripts/k8s-deploy", "prod", sha],
        cwd=service,
        env={
            "PATH": f"{fake_cluster}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LOG": str(log),
            "FAKE_APPLIED": str(applied),
            "REAL_KUBECTL": binary("kubectl"),
        },
    )
    assert proc.returncode == 0, f"CI-4: scripts/k8s-deploy failed\n{output(proc)}"
    digest = "sha256:" + "a" * 64
    image = f"{ecr_registry(service)}/{answers['project_slug']}:{sha}@{digest}"
    deployed = [o for o in yaml.safe_load_all(applied.read_text()) if o and o["kind"] == "Deployment"]
    images = {c["image"] for c in all_containers(deployed[0]["spec"]["template"]["spec"])}
    assert images == {image}, f"CI-4: the deploy must run the promoted <sha> pinned to its digest, not {images}"
    calls = log.read_text()
    assert f"--name {answers['project_slug']}-prod" in calls, "CONTRACTS: the deploy targets cluster <slug>-prod"
    assert f"rollout status deployment/{answers['project_slug']}" in calls, "CI-4: the deploy must wait for the rollout"
    assert not list((service / "deploy/k8s").glob(".release.*")), "scripts/k8s-deploy must clean up its kustomization"


@pytest.mark.parametrize("tag", ["latest", "0123456789abcdef0123456789abcdef01234567-candidate", "0123456"])
def test_deploy_script_refuses_undeployable_tags(service: Path, fake_cluster: Path, tmp_path: Path, tag: str) -> None:
    proc = run(
        ["scripts/k8s-deploy", "dev", tag],
        cwd=service,
        env={"PATH": f"{fake_cluster}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "log")},
    )
    assert proc.returncode != 0, f"CI-4: scripts/k8s-deploy must refuse tag {tag!r}"
    assert not (tmp_path / "log").exists(), "CI-4: a refused tag must not reach AWS or the cluster"


def test_deploy_script_stops_when_the_image_was_not_promoted(
    service: Path, fake_cluster: Path, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    proc = run(
        ["scripts/k8s-deploy", "dev", "0123456789abcdef0123456789abcdef01234567"],
        cwd=service,
        env={"PATH": f"{fake_cluster}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(log), "FAKE_ECR_MISSING": "1"},
    )
    assert proc.returncode != 0 and "no promoted image" in proc.stderr, (
        f"CI-4: an image without the promoted <sha> tag must not be deployed\n{output(proc)}"
    )
    assert "kubectl" not in log.read_text(), "CI-4: the cluster must not be touched when the image is missing"


# --- Make target and runbook (OPS-1, OPS-2) --------------------------------------------------


def test_make_k8s_build_renders_an_overlay(service: Path) -> None:
    kubectl_dir = str(Path(binary("kubectl")).parent)
    proc = run(["make", "--no-print-directory", "k8s-build", "ENV=prod"], cwd=service,
               env={"PATH": f"{kubectl_dir}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 0, f"make k8s-build ENV=prod failed\n{output(proc)}"
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert rendered == render(service, "prod"), "make k8s-build must print the prod overlay"


def kubernetes_runbook(service: Path) -> str:
    runbook = service / "docs/runbook.md"
    assert runbook.exists(), "OPS-1: docs/runbook.md is missing"
    text = runbook.read_text()
    assert "\n## Kubernetes" in text, "OPS-1: docs/runbook.md has no `## Kubernetes` section"
    return text.split("\n## Kubernetes", 1)[1]


def test_runbook_kubernetes_commands(service: Path) -> None:
    answers = answers_of(service)
    section = kubernetes_runbook(service)
    ns, slug = answers["k8s_namespace"], answers["project_slug"]
    expected = {
        "OPS-1 logs by label": f"kubectl logs -n {ns} -l app.kubernetes.io/name={slug}",
        "OPS-1 logs of a container": "-c migrate",
        "OPS-1 logs after a crash": "--previous",
        "OPS-2 port-forward": f"kubectl port-forward -n {ns} svc/{slug} 8080:80",
        "K8S-4 HPA": f"kubectl get hpa -n {ns}",
        "K8S-4 metrics-server": "kubectl top pods",
        "K8S-5 secrets": f"kubectl get externalsecret -n {ns}",
        "K8S-6 pull secret": "ecr-secret",
    }
    missing = [f"{what}: {command}" for what, command in expected.items() if command not in section]
    assert not missing, f"docs/runbook.md Kubernetes section lacks: {missing}"
    assert "{{" not in section and "{%" not in section, "docs/runbook.md keeps template residue"
