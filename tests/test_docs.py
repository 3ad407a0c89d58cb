"""The generated docs: every Mermaid diagram renders, the on-call index reaches every page it names.

Diagrams are rendered by mermaid-cli with Debian's chromium (scripts/bootstrap.sh installs both
and a `.tools/bin/mmdc` wrapper that points puppeteer at the system browser), the way GitLab would
draw them, so a diagram with a syntax error fails here instead of showing as an error box.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import output, run, tool

MERMAID = re.compile(r"^```mermaid\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


def markdown_files(service: Path) -> list[Path]:
    return sorted(p for p in service.rglob("*.md") if ".git" not in p.parts and ".venv" not in p.parts)


def gitlab_anchor(heading: str) -> str:
    """GitLab's heading id: lowercase, punctuation dropped, spaces to hyphens, hyphen runs folded."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r"-+", "-", text.replace(" ", "-"))


def anchors(path: Path) -> set[str]:
    text = MERMAID.sub("", path.read_text())
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return {gitlab_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_architecture_draws_the_three_pictures(service: Path) -> None:
    diagrams = MERMAID.findall((service / "docs" / "architecture.md").read_text())
    assert len(diagrams) == 3, "architecture.md: the pipeline, the infrastructure, the request path"
    pipeline, infrastructure, request = diagrams
    for word in ("candidate", "scan-image", "promote-image", "gitlab-build", "gitlab-dev", "gitlab-prod",
                 "deploy-prod", "destroy-ephemeral"):
        assert word in pipeline, f"CI-4: the pipeline diagram must show {word}"
    for word in ("persistent/", "ephemeral/", "bootstrap/", "NAT gateway", "EKS", "RDS", "every evening", "ECR"):
        assert word in infrastructure, f"TF-2: the infrastructure diagram must show {word}"
    for word in ("Ingress", "Service", "init container", "ExternalSecret", "Secrets Manager", "db-secret"):
        assert word in request, f"K8S-2/K8S-5: the request diagram must show {word}"


def test_every_mermaid_diagram_renders(service: Path, tmp_path: Path) -> None:
    mmdc = tool("mmdc")
    rendered = 0
    for path in markdown_files(service):
        count = len(MERMAID.findall(path.read_text()))
        if not count:
            continue
        out = tmp_path / path.relative_to(service)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Markdown in, one SVG per block out; any block that does not parse fails the call.
        proc = run([mmdc, "--quiet", "--input", str(path), "--output", str(out)], timeout=300)
        assert proc.returncode == 0, f"{path.relative_to(service)}: a Mermaid diagram does not render\n{output(proc)}"
        svgs = sorted(out.parent.glob(f"{out.stem}-*.svg"))
        assert len(svgs) == count, f"{path.name}: {count} diagrams, {len(svgs)} rendered"
        assert all("<svg" in svg.read_text() for svg in svgs)
        rendered += count
    assert rendered >= 3


def test_a_broken_diagram_fails_the_render(tmp_path: Path) -> None:
    """The check above is only worth something if mermaid-cli fails on a diagram that does not parse."""
    page = tmp_path / "broken.md"
    page.write_text("# Broken\n\n```mermaid\nflowchart LR\n  build --> scan -->> [promote\n```\n")
    proc = run([tool("mmdc"), "--quiet", "--input", str(page), "--output", str(tmp_path / "out.md")], timeout=300)
    assert proc.returncode != 0 and "Parse error" in proc.stderr, output(proc)


def test_every_relative_link_reaches_a_file_and_heading(service: Path) -> None:
    broken = []
    for path in markdown_files(service):
        for target in LINK.findall(path.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(service)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.relative_to(service)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    "page", ["runbook.md", "ci-variables.md", "costs.md", "production-checklist.md", "architecture.md",
             "infrastructure.md", "kubernetes.md", "updates.md"]
)
def test_docs_index_links_every_page_for_the_person_on_call(service: Path, page: str) -> None:
    index = (service / "docs" / "index.md").read_text()
    assert f"]({page}" in index, f"docs/index.md must link {page}"
    assert (service / "docs" / page).exists()


def test_readme_ends_with_the_architecture(service: Path) -> None:
    readme = (service / "README.md").read_text()
    last_section = readme.rsplit("\n## ", 1)[1]
    assert last_section.startswith("Architecture\n"), "the README's last section is Architecture"
    assert "(docs/architecture.md)" in last_section and "(docs/index.md)" in last_section


def test_updates_doc_divides_the_work_between_renovate_and_copier(service: Path) -> None:
    text = (service / "docs" / "updates.md").read_text()
    for phrase in ("versions: what this service pins", "practices: how this service is built", "copier update --trust"):
        assert phrase in text
