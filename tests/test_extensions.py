"""The helpers copier.yml and the templates rely on (extensions/template.py)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import yaml

from conftest import TEMPLATE_ROOT

_spec = importlib.util.spec_from_file_location("template_extension", TEMPLATE_ROOT / "extensions" / "template.py")
assert _spec and _spec.loader
ext = importlib.util.module_from_spec(_spec)
sys.modules["template_extension"] = ext
_spec.loader.exec_module(ext)


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Été", "ete"),
        ("Crème Brûlée Ordering", "creme-brulee-ordering"),
        ("Straße 9", "strasse-9"),
        ("Smørrebrød Œuvre", "smorrebrod-oeuvre"),
        ("日本 API", "api"),
        ("--Already-Slugged--", "already-slugged"),
        ("2fast", "fast"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert ext.slugify(text) == slug
    assert not ext.dns_label_error(slug)


def test_slugify_cuts_at_a_word_boundary_within_the_limit() -> None:
    slug = ext.slugify("word " * 30)
    assert len(slug) <= ext.SLUG_MAX_LENGTH
    assert slug.endswith("word")


def test_slugify_cuts_a_single_long_word() -> None:
    assert ext.slugify("a" * 100) == "a" * ext.SLUG_MAX_LENGTH


@pytest.mark.parametrize("value", ["", "UPPER", "under_score", "-x", "x-", "1abc", "a" * 41])
def test_dns_label_error_explains(value: str) -> None:
    assert ext.dns_label_error(value)


def test_regions_are_real_codes() -> None:
    assert "eu-west-3" in ext.AWS_REGIONS
    assert not ext.region_error("us-east-1")
    assert ext.region_error("eu-west-9")
    assert len(set(ext.AWS_REGIONS)) == len(ext.AWS_REGIONS)


@pytest.mark.parametrize("account", ["012345670123", "000000000000", "999999999999"])
def test_answers_yaml_quotes_digit_strings(account: str) -> None:
    text = ext.answers_yaml({"ecr_account_id": account, "replicas_max": 5, "name": "Été"})
    assert f"ecr_account_id: '{account}'" in text
    assert "replicas_max: 5" in text
    assert "Été" in text
    assert yaml.safe_load(text)["ecr_account_id"] == account


def test_registry_host() -> None:
    assert ext.ecr_registry("012345670123", "eu-west-3") == "012345670123.dkr.ecr.eu-west-3.amazonaws.com"


@pytest.mark.parametrize(("value", "prefix", "ok"), [("t3.medium", "", True), ("m6i.large", "", True),
    ("db.t3.micro", "db.", True), ("t3.micro", "db.", False), ("t3", "", False), ("db.t3", "db.", False)])  # fmt: skip
def test_instance_type_error(value: str, prefix: str, ok: bool) -> None:
    assert (ext.instance_type_error(value, prefix) == "") is ok


def test_quoted_is_a_valid_literal_everywhere() -> None:
    literal = ext.quoted('Été "quoted" \\ name')
    assert eval(literal) == 'Été "quoted" \\ name'  # noqa: S307 - a literal we just built
    assert yaml.safe_load(f"k: {literal}")["k"] == 'Été "quoted" \\ name'
