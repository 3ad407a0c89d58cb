"""ECR-1: the lifecycle policies of both image repositories, evaluated with ECR's documented semantics.

The policies are rendered by Terraform itself (tests/terraform_eval.py) and then applied, by the
rules of the ECR user guide ("Lifecycle policies", "Lifecycle policy properties"), to the tag sets
the pipeline produces. The candidates repository holds `<sha>-candidate` from build-image. The
service repository holds `<sha>` and `latest`, which promote-image copies in from there, and
`deployed-prod`, which the prod deploy moves; it also holds what pipelines before release 0.2.0
left there: candidates, and promoted images that kept their candidate tag.

Semantics applied (ECR user guide):
- rules run in rulePriority order, lowest first; `tagStatus: any` must be last;
- `tagged` + tagPatternList: an image is selected when, for every pattern of the list, one of its
  tags matches it (`*` is the only wildcard, the whole tag must match); `untagged`: no tag;
- "An image that matches the tagging requirements of a rule cannot be expired by a rule with a
  lower priority", and an expired image is not considered again;
- sinceImagePushed expires selected images older than countNumber days; imageCountMoreThan keeps
  the countNumber most recently pushed selected images and expires the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import answers_of
from terraform_eval import evaluate_locals

HEX = "0123456789abcdef"


@dataclass(frozen=True)
class Image:
    name: str
    tags: frozenset[str]
    age_days: int


def _matches(pattern: str, tag: str) -> bool:
    # `*` is ECR's only wildcard; ? and [..] are literal characters there.
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, tag) is not None


def _selected(rule: dict, image: Image) -> bool:
    selection = rule["selection"]
    status = selection["tagStatus"]
    if status == "untagged":
        return not image.tags
    if status == "any":
        return True
    if not image.tags:
        return False
    if "tagPatternList" in selection:
        return all(any(_matches(p, t) for t in image.tags) for p in selection["tagPatternList"])
    return all(any(t.startswith(p) for t in image.tags) for p in selection["tagPrefixList"])


def expired_by(policy: dict, images: list[Image]) -> set[str]:
    rules = sorted(policy["rules"], key=lambda r: r["rulePriority"])
    assert len({r["rulePriority"] for r in rules}) == len(rules), "ECR: rulePriority values must be unique"
    anys = [i for i, r in enumerate(rules) if r["selection"]["tagStatus"] == "any"]
    assert not anys or anys == [len(rules) - 1], "ECR: a tagStatus any rule must have the highest priority"
    for rule in rules:
        for pattern in rule["selection"].get("tagPatternList", []):
            assert pattern.count("*") <= 4, f"ECR allows four wildcards per pattern: {pattern}"
    claimed: set[str] = set()  # matched by a higher-priority rule: lower rules cannot expire them
    expired: set[str] = set()
    for rule in rules:
        pool = [i for i in images if i.name not in claimed and i.name not in expired and _selected(rule, i)]
        selection = rule["selection"]
        if selection["countType"] == "sinceImagePushed":
            assert selection["countUnit"] == "days"
            doomed = [i for i in pool if i.age_days > selection["countNumber"]]
        else:
            newest_first = sorted(pool, key=lambda i: i.age_days)
            doomed = newest_first[selection["countNumber"]:]
        expired |= {i.name for i in doomed}
        claimed |= {i.name for i in pool}
    return expired


def _shas() -> list[str]:
    """SHAs ending in every hex digit and every two-digit suffix ending in e (the hard case)."""
    body = "0123456789abcdef0123456789abcdef012345"
    return [body + a + b for a in HEX for b in HEX]


def _rendered(service: Path, name: str) -> dict:
    stack = service / "infra" / "terraform" / "persistent"
    answers = answers_of(service)
    variables = {
        "project_slug": answers["project_slug"],
        "aws_region": answers["aws_region"],
        "account_id": str(answers["ecr_account_id"]),
        "gitlab_project_path": answers["gitlab_project_path"],
        "base_domain": answers["base_domain"],
    }
    rendered = evaluate_locals(stack, ["lifecycle.tf"], [name], variables)
    return json.loads(rendered[name])


@pytest.fixture()
def policy(service: Path) -> dict:
    return _rendered(service, "service_lifecycle_policy")


@pytest.fixture()
def candidates_policy(service: Path) -> dict:
    return _rendered(service, "candidates_lifecycle_policy")


def test_pipeline_still_produces_the_tags_this_policy_knows(service: Path) -> None:
    text = (service / ".gitlab-ci.yml").read_text()
    assert '--destination "${CANDIDATE_IMAGE}:${CI_COMMIT_SHA}-candidate"' in text, (
        "ECR-1: build pushes <sha>-candidate to the candidates repository")
    assert 'for tag in "${CI_COMMIT_SHA}" latest; do' in text, (
        "ECR-1: promote writes <sha> and latest; the lifecycle policy was written for these tags"
    )
    assert "--image-tag deployed-prod" in (service / "scripts" / "k8s-deploy").read_text(), (
        "ECR-1: the prod deploy moves deployed-prod, which sits on a promoted <sha>")


def test_ecr1_unpromoted_candidates_and_untagged_expire_promoted_never(policy: dict) -> None:
    retention = next(r for r in policy["rules"] if "*-candidate" in r["selection"].get("tagPatternList", []))
    days = retention["selection"]["countNumber"]
    images: list[Image] = []
    for sha in _shas():
        images += [
            Image(f"old-candidate-{sha}", frozenset({f"{sha}-candidate"}), days + 30),
            Image(f"fresh-candidate-{sha}", frozenset({f"{sha}-candidate"}), max(days - 1, 0)),
            Image(f"promoted-{sha}", frozenset({f"{sha}-candidate", sha}), 900),
            Image(f"latest-{sha}", frozenset({f"{sha}-candidate", sha, "latest"}), 400),
            # What promote-image writes since release 0.2.0: a copy without the candidate tag.
            Image(f"promoted-copy-{sha}", frozenset({sha}), 900),
            Image(f"prod-copy-{sha}", frozenset({sha, "deployed-prod"}), 800),
            Image(f"latest-copy-{sha}", frozenset({sha, "latest"}), 300),
        ]
    images += [Image(f"untagged-{n}", frozenset(), 3 + n) for n in range(5)]
    expired = expired_by(policy, images)
    kept_promoted = {i.name for i in images if i.name.startswith(("promoted-", "latest-", "prod-"))} & expired
    assert not kept_promoted, f"ECR-1: deployed images would expire: {sorted(kept_promoted)[:5]}"
    wanted = {i.name for i in images if i.name.startswith(("old-candidate-", "untagged-"))}
    assert expired == wanted, (
        f"ECR-1: expected exactly the unpromoted old candidates and untagged images; "
        f"missing {sorted(wanted - expired)[:5]}, extra {sorted(expired - wanted)[:5]}"
    )


def test_ecr1_candidates_repository_expires_every_candidate_and_nothing_young(candidates_policy: dict,
                                                                             policy: dict) -> None:
    """Nothing deploys from the candidates repository, so everything there goes after the
    retention, tagged or not; a candidate is promoted within its pipeline, long before that."""
    (rule,) = candidates_policy["rules"]
    days = rule["selection"]["countNumber"]
    assert days >= 1, "ECR-1: a candidate must outlive the pipeline that scans and promotes it"
    images = []
    for sha in _shas():
        images += [Image(f"old-{sha}", frozenset({f"{sha}-candidate"}), days + 1),
                   Image(f"fresh-{sha}", frozenset({f"{sha}-candidate"}), days - 1)]
    images += [Image("old-untagged", frozenset(), days + 1), Image("fresh-untagged", frozenset(), 0)]
    expired = expired_by(candidates_policy, images)
    assert expired == {i.name for i in images if i.name.startswith("old-")}, sorted(expired)[:5]
    retention = next(r for r in policy["rules"] if "*-candidate" in r["selection"].get("tagPatternList", []))
    assert days == retention["selection"]["countNumber"], "one retention for candidates, wherever they are"


def test_ecr1_evaluator_catches_the_rule_that_deleted_promoted_images() -> None:
    """The evaluator itself: the release-0.1.0 policy (one candidate rule) expires a promoted image."""
    old = {"rules": [{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["*-candidate"],
                                                        "countType": "sinceImagePushed", "countUnit": "days",
                                                        "countNumber": 7}, "action": {"type": "expire"}}]}
    sha = "a" * 40
    promoted = Image("promoted", frozenset({f"{sha}-candidate", sha, "latest"}), 30)
    assert expired_by(old, [promoted]) == {"promoted"}


# Amazon ECR user guide, "Amazon ECR service quotas": images per repository, default 100,000
# (adjustable). Checked for issue 11 round 2 (docs/CONTRACTS.md).
ECR_IMAGES_PER_REPOSITORY = 100_000


def test_ecr1_keep_rules_hold_at_the_documented_quota(service: Path, policy: dict) -> None:
    """A keep rule that reaches its count starts expiring promoted images: at the default quota the
    SHAs one suffix rule matches (a binomial share of random hex) stay far below its count."""
    for rule in policy["rules"]:
        selection = rule["selection"]
        if selection.get("countType") != "imageCountMoreThan" or selection["tagStatus"] != "tagged":
            continue
        (pattern,) = selection["tagPatternList"]
        if pattern == "latest":
            continue
        share = 16.0 ** -len(pattern.lstrip("*"))
        mean = ECR_IMAGES_PER_REPOSITORY * share
        worst = mean + 6 * (ECR_IMAGES_PER_REPOSITORY * share * (1 - share)) ** 0.5
        assert worst < selection["countNumber"], f"ECR-1: rule {pattern} may reach its count at the quota"
    text = (service / "infra" / "terraform" / "persistent" / "lifecycle.tf").read_text()
    assert f"{ECR_IMAGES_PER_REPOSITORY:,}" in text, "ECR-1: lifecycle.tf must state ECR's documented default quota"
