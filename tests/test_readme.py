"""The README's two commands stay true: CI runs the second, this test runs the first's copy."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from conftest import COPIER, TEMPLATE_ROOT, answers_of, output, run


def readme_commands() -> list[str]:
    lines = (TEMPLATE_ROOT / "README.md").read_text().splitlines()
    start = lines.index("```sh")
    return lines[start + 1 : lines.index("```", start)]


def test_readme_begins_with_two_commands() -> None:
    lines = [line for line in (TEMPLATE_ROOT / "README.md").read_text().splitlines() if line.strip()]
    assert lines[1] == "```sh", "the README must open with the commands"
    assert len(readme_commands()) == 2


def test_ci_runs_the_readme_test_command() -> None:
    proc = run(["bash", "-c", "sed -n '/^```sh$/,/^```$/p' README.md | sed -n 3p"], cwd=TEMPLATE_ROOT)
    assert proc.stdout.strip() == readme_commands()[1]
    assert "sed -n '/^```sh$/,/^```$/p' README.md | sed -n 3p" in (TEMPLATE_ROOT / ".ci" / "run").read_text()
    assert "pytest" in readme_commands()[1]


def test_readme_copy_command_generates_a_service(tmp_path: Path) -> None:
    generate_part = readme_commands()[0].split("&& ")[-1]
    argv = shlex.split(generate_part.replace('"$PWD"', str(TEMPLATE_ROOT)))
    assert argv[0].endswith("copier") and argv[1] == "copy"
    dst = tmp_path / "orders-api"
    proc = run([*COPIER, *argv[1:-1], "--vcs-ref", "HEAD", str(dst)])
    assert proc.returncode == 0, output(proc)
    assert answers_of(dst)["project_slug"] == "orders-api"
    assert (dst / "app" / "main.py").exists()


def update_command(text: str) -> str:
    found = re.findall(r"copier update --trust[^`\n$]*", text)
    assert found, "no `copier update --trust ...` command"
    return found[0].strip()


def test_one_update_command_in_both_readmes_and_make_update() -> None:
    """The template README, the service README and the service's `make update` run the same copier."""
    makefile = (TEMPLATE_ROOT / "template" / "Makefile.jinja").read_text()
    recipe = re.search(r"^update:.*?(?=^\S)", makefile, re.S | re.M)
    assert recipe, "the service has no `make update`"
    command = update_command(recipe.group(0))
    assert command == "copier update --trust --defaults --skip-answered", command
    for readme in (TEMPLATE_ROOT / "README.md", TEMPLATE_ROOT / "template" / "README.md.jinja"):
        text = readme.read_text()
        assert "make update" in text, f"{readme.name} does not give `make update`"
        commands = {match.strip() for match in re.findall(r"copier update --trust[^`\n]*", text)}
        assert all(c.startswith(command) for c in commands), f"{readme}: {commands} differ from {command}"


def test_readme_says_how_releases_are_published_and_chosen() -> None:
    text = (TEMPLATE_ROOT / "README.md").read_text()
    assert "PEP 440" in text and "git tag" in text
    assert "--vcs-ref" in text and "make update REF=" in text
    assert "No git tags found in template; using HEAD as ref" in text
