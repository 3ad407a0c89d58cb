"""The generated service beside the backend of FastAPI's full-stack template, on this machine.

    python bench/peer.py                         # clones the peer from GitHub
    python bench/peer.py --peer-repo PATH        # or from a local clone or mirror of it

The table of issue 16, measured again the same way: the same PostgreSQL, one uvicorn worker each,
wrk on 127.0.0.1, rounds alternating between the two servers (each round a fresh process):

- authenticated `GET /users/me`: requests/s and p99 (wrk, 16 connections, the tokens of run.py's
  `ME_USERS` users of each side in turn);
- logins: `POST` of a right password by 20 clients; logins/s counts the 2xx only (the service
  answers 503 at once past its hashing queue, RUN-2, which must not count as a login);
- the readiness probe's p99 while those 20 clients log in, asked as the kubelet asks
  (run.py `probe_p99_ms`): the service's `/ready`, which reads the database, and the peer's
  `/api/v1/utils/health-check/`, the only probe it has, which does not.

The peer is the `backend/` of full-stack-fastapi-template at `--tag` (0.10.0), installed from its
own uv.lock (exact versions and hashes, the runtime dependencies only) into a Python 3.12
virtualenv, migrated by its own `alembic upgrade head`, served by `uvicorn app.main:app` with the
uvicorn[standard] it locks (uvloop and httptools): its image runs `fastapi run --workers 4`, one
worker here as for the service. The service is this template generated with the required answers,
its runtime virtualenv built as run.py builds it, served by its Dockerfile's CMD.

Prints the table, then as its very last line:

    peer: me_rps=… peer_me_rps=… me_p99_ms=… peer_me_p99_ms=… login_rps=… peer_login_rps=… \
        probe_p99_ms=… peer_probe_p99_ms=…
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from packaging.markers import Marker, default_environment

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the helpers of the main benchmark, once its folder is on the path

# The peer's virtualenv: this machine, Python 3.12 (whichever Python runs this script).
ENVIRONMENT = {key: str(value) for key, value in default_environment().items()} | {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
}
PEER_URL = "https://github.com/fastapi/full-stack-fastapi-template.git"
PEER_HEALTH = "/api/v1/utils/health-check/"
PEER_DATABASE = "bench_peer"
LOGIN_CLIENTS = 20
ME_CONNECTIONS = 16

DROP_PEER_DATABASE_SQL = f"DROP DATABASE IF EXISTS {PEER_DATABASE} WITH (FORCE);\n"
PEER_DATABASE_SQL = rf"""
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{PEER_DATABASE}';
DROP DATABASE IF EXISTS {PEER_DATABASE};
CREATE DATABASE {PEER_DATABASE} OWNER bench;
"""


def locked_requirements(lock: Path, project: str = "app") -> str:
    """`project`'s runtime dependencies from a uv.lock, as a pip requirements file with hashes."""
    packages = {p["name"]: p for p in tomllib.loads(lock.read_text())["package"]}
    wanted: dict[str, set[str]] = {}
    todo = [(d["name"], tuple(d.get("extra", ()))) for d in packages[project]["dependencies"]]
    done: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        package = packages[name]
        deps = list(package.get("dependencies", []))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        # Dependencies for other platforms or Pythons (colorama, tomli...) stay out, as uv leaves them.
        todo += [
            (d["name"], tuple(d.get("extra", ())))
            for d in deps
            if Marker(d.get("marker", "python_version > '0'")).evaluate(ENVIRONMENT)
        ]
        wanted.setdefault(name, set()).update(extras)
    lines = []
    for name, wanted_extras in sorted(wanted.items()):
        package = packages[name]
        hashes = [w["hash"] for w in package.get("wheels", [])]
        if "sdist" in package:
            hashes.append(package["sdist"]["hash"])
        # With its extras, or pip finds `uvicorn[standard]>=...` unpinned under --require-hashes.
        spec = f"{name}[{','.join(sorted(wanted_extras))}]" if wanted_extras else name
        lines.append(f"{spec}=={package['version']} " + " ".join(f"--hash={h}" for h in hashes))
    return "\n".join(lines) + "\n"


def peer_checkout(source: str, tag: str, dst: Path) -> Path:
    local = "://" not in source and not source.startswith("git@")
    bench.run(["git", "clone", "-q", "--branch", tag, *([] if local else ["--depth", "1"]), "--", source, str(dst)])
    return dst


def peer_database() -> None:
    bench.ensure_bench_database()
    proc = bench.as_postgres(PEER_DATABASE_SQL)
    if proc.returncode != 0:
        bench.fail(f"could not create the peer's database: {proc.stderr}")


def peer_env() -> dict[str, str]:
    return {
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "ENVIRONMENT": "local",
        "PROJECT_NAME": "peer",
        "SECRET_KEY": "peer-" + "0123456789abcdef" * 3,
        "FIRST_SUPERUSER": "admin@example.com",
        "FIRST_SUPERUSER_PASSWORD": "peer-admin-password-0123",
        "POSTGRES_SERVER": bench.LOOPBACK,
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "bench",
        "POSTGRES_PASSWORD": "bench",
        "POSTGRES_DB": PEER_DATABASE,
    }


def stored_hash_params(url: str, query: str, key: str) -> str:
    """The algorithm and parameters of a stored password hash ("argon2id m=19456,t=2,p=1")."""
    literal = "'" + key.replace("'", "''") + "'"
    stored = bench.run(["psql", url, "-Atc", query.replace("%s", literal)]).stdout.strip()
    parts = stored.split("$")
    return f"{parts[1]} {parts[3]}" if stored.startswith("$argon2") else stored[:4]


class Side:
    """One server under test: how to start it, its routes, and the figures of each round."""

    def __init__(self, name: str, cmd: list[str], cwd: Path, venv: Path, env: dict[str, str], routes: dict[str, str]):
        self.name, self.cmd, self.cwd, self.venv, self.env, self.routes = name, cmd, cwd, venv, env, routes
        self.figures: dict[str, list[float]] = {}
        self.me_lua = Path()
        self.login_lua = Path()
        self.hash_params = ""

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self.figures.setdefault(key, []).append(value)

    def median(self, key: str) -> float:
        return bench.median(self.figures[key])


def measure(wrk: str, side: Side, seconds: int, logs: Path) -> None:
    with bench.server(side.cmd, side.cwd, side.venv, logs / f"{side.name}.log", side.routes["probe"], side.env) as (
        port,
        _,
    ):
        base = f"http://{bench.LOOPBACK}:{port}"
        me = [f"{base}{side.routes['me']}", "-s", str(side.me_lua)]
        bench.wrk_run(wrk, me[0], 1, ME_CONNECTIONS, *me[1:])  # warm-up: the pools fill, the code paths load
        pid = bench._SERVERS[-1].pid
        cpu_before = bench.process_cpu_s(pid)
        read = bench.wrk_run(wrk, me[0], seconds, ME_CONNECTIONS, *me[1:])  # every answer a 200, or it fails
        # CPU time a request (its threads included): moves far less than requests/s on a busy machine.
        me_cpu = (bench.process_cpu_s(pid) - cpu_before) / read.requests * 1e6
        login_url, login_script = f"{base}{side.routes['login']}", ["-s", str(side.login_lua)]
        logins = bench.wrk_run(wrk, login_url, seconds, LOGIN_CLIENTS, *login_script, allow_non2xx=True, timeout_s=30)
        probe = bench.probe_p99_under_logins_ms(
            wrk, login_url, side.login_lua, LOGIN_CLIENTS, port, side.routes["probe"], seconds
        )
    side.add(
        me_rps=read.rps,
        me_p99=read.p99_ms,
        me_cpu=me_cpu,
        # Logins that succeeded: the service answers 503 at once past its hashing queue (RUN-2).
        login_rps=(logins.requests - logins.non_2xx) / logins.seconds,
        login_p99=logins.p99_ms,
        shed=logins.non_2xx / max(logins.requests, 1),
        probe=probe,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-repo", default=PEER_URL, help="git URL or local path of full-stack-fastapi-template")
    parser.add_argument("--tag", default="0.10.0", help="the peer's release")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating between the two servers")
    parser.add_argument("--seconds", type=int, default=6, help="duration of each wrk run")
    args = parser.parse_args()
    if bench.os.geteuid() != 0 or "BENCH_DATABASE_URL" in bench.os.environ:
        # Both servers on the same PostgreSQL: the local one, where it makes the `bench` role and
        # the peer's database as the postgres user.
        bench.fail("run as root, without BENCH_DATABASE_URL: the two databases are made on the local PostgreSQL")
    wrk = bench.ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    try:
        report(wrk, work, args.peer_repo, args.tag, max(1, min(args.rounds, 10)), max(2, min(args.seconds, 60)))
    finally:
        while bench._SERVERS:
            bench.stop(bench._SERVERS[-1])
        shutil.rmtree(work, ignore_errors=True)
        bench.as_postgres(DROP_PEER_DATABASE_SQL)


def report(wrk: str, work: Path, peer_repo: str, tag: str, rounds: int, seconds: int) -> None:
    logs = work / "logs"
    logs.mkdir()
    python = bench.python_for("3.12")

    bench.step("the service: generated from this template, its runtime venv, migrated")
    service = work / "service"
    bench.run(bench.copy_args(bench.snapshot_template(work / "template"), service), env=bench.BASE_ENV)
    service_venv = bench.build_runtime_venv(python, service, work / "service-venv")
    bench.ensure_bench_database()
    service_env = {"PATH": f"{service_venv / 'bin'}:/usr/bin:/bin", "HOME": str(work), **bench.SERVICE_ENV}
    bench.run([str(service_venv / "bin" / "alembic"), "upgrade", "head"], cwd=service, env=service_env)
    ours = Side(
        "service",
        bench.container_command(service / "Dockerfile"),
        service,
        service_venv,
        # One token for the whole run, however long: the longest lifetime the service allows (24 h,
        # the peer's is 8 days), rather than its 30 minutes.
        {**bench.SERVICE_ENV, "ACCESS_TOKEN_EXPIRE_MINUTES": str(24 * 60)},
        {"me": "/users/me", "login": "/auth/token", "probe": "/ready"},
    )

    bench.step(f"the peer: full-stack-fastapi-template {tag} backend, its uv.lock, migrated")
    source = peer_checkout(peer_repo, tag, work / "peer")
    backend = source / "backend"
    requirements = work / "peer-requirements.txt"
    requirements.write_text(locked_requirements(source / "uv.lock"))
    peer_venv = work / "peer-venv"
    bench.run([python, "-m", "venv", str(peer_venv)], env=bench.BASE_ENV)
    bench.run(
        [str(peer_venv / "bin" / "pip"), "install", "-q", "--require-hashes", "-r", str(requirements)],
        env={**bench.BASE_ENV, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        timeout=bench.PIP_TIMEOUT_S,
    )
    peer_database()
    # The peer's image installs `backend/` as the package `app`; here it is imported from its folder.
    env = {**peer_env(), "PYTHONPATH": str(backend)}
    bench.run([str(peer_venv / "bin" / "alembic"), "upgrade", "head"], cwd=backend,
              env={"PATH": f"{peer_venv / 'bin'}:/usr/bin:/bin", "HOME": str(work), **env})  # fmt: skip
    peer = Side(
        "peer",
        ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"],
        backend,
        peer_venv,
        env,
        {"me": "/api/v1/users/me", "login": "/api/v1/login/access-token", "probe": PEER_HEALTH},
    )

    bench.step(f"{bench.ME_USERS} users on each, and their tokens")
    password = "bench-password-0123456789"
    user = {"username": f"peer-{bench.os.getpid()}-{int(time.time())}", "password": password}
    with bench.server(ours.cmd, ours.cwd, ours.venv, logs / "service-setup.log", "/ready", ours.env) as (port, _):
        ours.me_lua = bench.lua_bearers(work / "service-me.lua", bench.service_tokens(port, user))
    ours.login_lua = bench.lua_post(work / "service-login.lua", json.dumps(user))
    form = f"username=bench%40example.com&password={password}"
    tokens = []
    with bench.server(peer.cmd, peer.cwd, peer.venv, logs / "peer-setup.log", PEER_HEALTH, peer.env) as (port, _):
        for number in range(bench.ME_USERS):
            email = f"bench{number or ''}@example.com"
            signup = {"email": email, "password": password, "full_name": "Bench"}
            status, body = bench.post(port, "/api/v1/users/signup", json.dumps(signup))
            if status != 200:
                bench.fail(f"peer: signup answered {status}: {body[:300]!r}")
            login = f"username={email.replace('@', '%40')}&password={password}"
            status, body = bench.post(port, "/api/v1/login/access-token", login, "application/x-www-form-urlencoded")
            if status != 200:
                bench.fail(f"peer: login answered {status}: {body[:300]!r}")
            tokens.append(json.loads(body)["access_token"])
    peer.me_lua = bench.lua_bearers(work / "peer-me.lua", tokens)
    peer.login_lua = bench.lua_post(work / "peer-login.lua", form, "application/x-www-form-urlencoded")
    # What a login costs each side is first the hash's parameters: read from the stored hashes.
    service_url = bench.BENCH_DATABASE_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    peer_url = f"postgresql://bench:bench@{bench.LOOPBACK}:5432/{PEER_DATABASE}"
    ours.hash_params = stored_hash_params(
        service_url, "SELECT password_hash FROM users WHERE username = %s", user["username"]
    )
    peer.hash_params = stored_hash_params(peer_url, 'SELECT hashed_password FROM "user" WHERE email = %s',
                                          "bench@example.com")  # fmt: skip

    bench.step(f"{rounds} rounds, alternating: GET me, logins by {LOGIN_CLIENTS} clients, the probe under them")
    bench.rounds(rounds, lambda: measure(wrk, ours, seconds, logs), lambda: measure(wrk, peer, seconds, logs))

    rows = [
        ("authenticated GET me, requests/s", "me_rps", "{:.0f}", True),
        ("GET me p99, ms", "me_p99", "{:.0f}", False),
        ("GET me CPU time a request, us", "me_cpu", "{:.0f}", False),
        (f"logins/s ({LOGIN_CLIENTS} clients, 2xx only)", "login_rps", "{:.1f}", True),
        ("login p99 (every answer), ms", "login_p99", "{:.0f}", False),
        ("logins not 2xx (503: hashing queue full)", "shed", "{:.0%}", False),
        ("probe p99 while logins run, ms", "probe", "{:.0f}", False),
    ]
    print()
    print(f"{'figure':<44} {'service':>10} {'peer':>10}  service vs peer")
    for label, key, fmt, higher_is_better in rows:
        a, b = ours.median(key), peer.median(key)
        if a and b:
            ratio = a / b if higher_is_better else b / a
            verdict = f"{ratio:.2f}x {'better' if ratio >= 1 else 'worse'}"
        else:
            verdict = "same" if a == b else ("better" if bool(a) == higher_is_better else "worse")
        print(f"{label:<44} {fmt.format(a):>10} {fmt.format(b):>10}  {verdict}")
    print(f"\npassword hashes: service {ours.hash_params}, peer {peer.hash_params} (logins/s follow them first)")
    print(f"probes: service /ready (reads the database), peer {PEER_HEALTH} (does not)")
    print(f"servers: service `{' '.join(ours.cmd)}`; peer `{' '.join(peer.cmd)}`, each on 127.0.0.1:<free port>")
    for side in (ours, peer):
        print(f"{side.name:<8}", "  ".join(f"{k} {' '.join(f'{v:.3g}' for v in vs)}" for k, vs in side.figures.items()))
    print(
        f"peer: me_rps={ours.median('me_rps'):.0f} peer_me_rps={peer.median('me_rps'):.0f} "
        f"me_p99_ms={ours.median('me_p99'):.0f} peer_me_p99_ms={peer.median('me_p99'):.0f} "
        f"login_rps={ours.median('login_rps'):.1f} peer_login_rps={peer.median('login_rps'):.1f} "
        f"probe_p99_ms={ours.median('probe'):.0f} peer_probe_p99_ms={peer.median('probe'):.0f}"
    )


if __name__ == "__main__":
    try:
        import copier  # noqa: F401
    except ImportError:
        venv_python = bench.REPO / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.executable) != venv_python:
            bench.os.execv(str(venv_python), [str(venv_python), *sys.argv])
        bench.fail("copier is not installed: python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt")
    bench.signal.signal(bench.signal.SIGTERM, bench._interrupted)
    main()
