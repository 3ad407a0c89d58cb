"""Jinja extension that gives copier.yml and the templates their helpers.

Loaded by copier.yml through ``copier_template_extensions.TemplateExtensionLoader``
so this folder needs no installation. Keep logic here, not in the templates.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from pathlib import Path

import yaml
from jinja2 import Environment
from jinja2.ext import Extension

# --- AWS facts ----------------------------------------

# Commercial AWS region codes from the AWS General Reference ("Regional
# endpoints"), November 2026. A typo such as eu-west-9 is refused at the prompt
# instead of surfacing when Terraform first talks to AWS.
AWS_REGIONS: tuple[str, ...] = (
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
)

# Hourly on-demand prices in USD from the original note (eu-west-3), TF-6.
# They are the defaults of the cost table; docs/costs.md says they move.
HOURLY_USD: dict[str, float] = {
    "nat_gateway": 0.045,
    "eks_control_plane": 0.10,
    "node_t3_medium": 0.047,
    "rds_micro": 0.02,
}


def ecr_registry(account_id: str, region: str) -> str:
    """Registry host of a private ECR registry."""
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"


# --- Names --------------------------------------------

# Kubernetes object names built from the slug add at most this many characters
# ("-external-secrets", "-tfstate-<12-digit account>"...); a DNS-1123 label is
# at most 63 characters, so the slug itself stays at or under 40.
SLUG_MAX_LENGTH = 40
DNS_LABEL_MAX_LENGTH = 63
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


# Letters that NFKD does not split into an ASCII letter plus an accent.
_NO_DECOMPOSITION = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L"}
)


def slugify(text: str, max_length: int = SLUG_MAX_LENGTH) -> str:
    """ASCII, lowercase, hyphen-separated; accents folded (``Été`` -> ``ete``)."""
    folded = str(text).translate(_NO_DECOMPOSITION)
    ascii_text = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug.lstrip("0123456789-")  # a DNS-1123 label used as a name must start with a letter
    if len(slug) > max_length:
        # Cut at a word boundary when there is one: "...-enough-to", not "...-enough-to-n".
        head = slug[:max_length]
        slug = head if slug[max_length] == "-" or "-" not in head else head.rsplit("-", 1)[0]
    return slug


def dns_label_error(value: str, max_length: int = SLUG_MAX_LENGTH) -> str:
    """Why ``value`` is not a DNS-1123 label of at most ``max_length`` characters ('' if it is)."""
    value = str(value)
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"is {len(value)} characters long; at most {max_length} keep every derived name within 63"
    if not _DNS_LABEL.match(value):
        return (
            "must be lowercase ASCII letters, digits and '-', start with a letter "
            "and end with a letter or digit (a DNS-1123 label)"
        )
    return ""


def quoted(text: object) -> str:
    """A double-quoted string literal valid in Python, TOML, YAML and HCL (accents kept)."""
    return json.dumps(str(text), ensure_ascii=False)


def snake_case(text: str) -> str:
    """``my-service`` -> ``my_service`` (database and Python identifiers)."""
    return slugify(text, max_length=63).replace("-", "_")


# --- Validators ---------------------------------------

_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
_GITLAB_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)+$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


def account_id_error(value: object) -> str:
    text = str(value)
    if not _ACCOUNT_ID.match(text):
        return f"'{text}' is not an AWS account ID: exactly 12 digits, leading zeros included"
    return ""


def region_error(value: object) -> str:
    if str(value) not in AWS_REGIONS:
        return f"'{value}' is not an AWS region code (for example eu-west-3, us-east-1)"
    return ""


def gitlab_path_error(value: object) -> str:
    text = str(value)
    if not _GITLAB_PATH.match(text) or text.endswith((".git", "/")):
        return f"'{text}' is not a GitLab project path such as 'my-group/my-service'"
    return ""


_DOMAIN = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")


def domain_error(value: object) -> str:
    text = str(value)
    if len(text) > 200 or not _DOMAIN.match(text):
        return f"'{text}' is not a lowercase DNS domain such as example.com"
    return ""


def instance_type_error(value: object, prefix: str = "") -> str:
    text = str(value)
    if not text.startswith(prefix) or not _INSTANCE_TYPE.match(text[len(prefix) :]):
        example = "db.t3.micro" if prefix else "t3.medium"
        return f"'{text}' is not an instance type such as {example}"
    return ""


def whole_number_error(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> str:
    """Why ``value`` is not a whole number in range, naming the question ('' if it is).

    The count questions are `type: yaml` so that text reaches this validator: with `type: int`
    copier fails on "two" before any validator runs and says only "Invalid input".
    """
    if minimum is not None and maximum is not None:
        expected = f"between {minimum} and {maximum}"
    elif minimum is not None:
        expected = f"at least {minimum}"
    elif maximum is not None:
        expected = f"at most {maximum}"
    else:
        expected = ""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number{' ' + expected if expected else ''}, not '{value}'"
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        return f"{name} must be {expected}"
    return ""


def cidr_list(value: object) -> list[str]:
    """A comma-separated answer as a list of CIDR blocks, blanks dropped."""
    return [item.strip() for item in str(value or "").split(",") if item.strip()]


def cidr_list_error(value: object) -> str:
    for item in cidr_list(value):
        try:
            network = ipaddress.IPv4Network(item)
        except ValueError:
            return f"'{item}' is not an IPv4 CIDR block such as 203.0.113.0/24"
        if network.prefixlen == 0:
            return f"'{item}' would open the EKS API to the whole internet: list the runners' egress CIDRs"
    return ""


# --- Answers file ----------------------------------------------------------


class _AnswersDumper(yaml.SafeDumper):
    """Quotes every digit-only string: YAML 1.2 readers parse 012345678901 as a number."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "'" if value.isdigit() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_AnswersDumper.add_representer(str, _represent_str)


def answers_yaml(answers: dict[str, object]) -> str:
    """The answers file body; an account ID like 012345678901 keeps its zero everywhere."""
    return yaml.dump(
        dict(answers), Dumper=_AnswersDumper, default_flow_style=False, allow_unicode=True, sort_keys=True
    )


# --- Practice catalog ----------------------------------------------------------

# The one source of the practices (copied verbatim into every service). Read from this
# module's own template checkout, so `copier update` renders each release with its own catalog.
CATALOG_PATH = Path(__file__).resolve().parent.parent / "template" / "docs" / "practices.yaml"


def gitlab_anchor(heading: str) -> str:
    """The id GitLab gives a Markdown heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r"-{2,}", "-", text.replace(" ", "-"))


def practice_catalog(path: Path = CATALOG_PATH) -> dict[str, list[dict[str, object]]]:
    """The catalog, with each checklist item's practices resolved and every heading's anchor.

    Refuses a checklist item that names an unknown practice, so the rendered checklist can
    never link to nothing.
    """
    catalog = yaml.safe_load(path.read_text(encoding="utf-8"))
    practices = [dict(item) for item in catalog["practices"]]
    by_id: dict[str, dict[str, object]] = {}
    for practice in practices:
        practice["heading"] = f"{practice['id']} {practice['title']}"
        practice["anchor"] = gitlab_anchor(str(practice["heading"]))
        practice["automatic"] = "manual" not in practice
        by_id[str(practice["id"])] = practice
    checklist = []
    for item in catalog["checklist"]:
        unknown = [pid for pid in item["practices"] if pid not in by_id]
        if unknown:
            raise ValueError(f"{path}: {item['id']} names unknown practices {unknown}")
        checklist.append({**item, "covered_by": [by_id[pid] for pid in item["practices"]]})
    return {"practices": practices, "checklist": checklist}


class ServiceExtension(Extension):
    """Filters and globals shared by copier.yml and template/."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(
            slugify=slugify,
            snake_case=snake_case,
            answers_yaml=answers_yaml,
            quoted=quoted,
        )
        environment.globals.update(
            aws_regions=AWS_REGIONS,
            hourly_usd=HOURLY_USD,
            slug_max_length=SLUG_MAX_LENGTH,
            registry_host=ecr_registry,
            domain_error=domain_error,
            dns_label_error=dns_label_error,
            account_id_error=account_id_error,
            region_error=region_error,
            gitlab_path_error=gitlab_path_error,
            instance_type_error=instance_type_error,
            whole_number_error=whole_number_error,
            cidr_list=cidr_list,
            cidr_list_error=cidr_list_error,
            practice_catalog=practice_catalog,
        )
