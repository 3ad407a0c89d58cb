"""Fail when a Trivy exception is unjustified, undated or expired (SEC-4).

Trivy accepts a `.trivyignore.yaml` entry without `statement` or `expired_at`, and an entry whose
key is misspelt (`expires_at`) is one that never expires. This check refuses all three, so every
ignored finding says why and comes back for review on a set date.

    vulnerabilities:
      - id: CVE-2026-12345
        statement: Only reachable through the XML parser, which the service never calls.
        expired_at: 2027-01-31
        purls:
          - pkg:pypi/example@1.2.3

Usage: python scripts/check_trivyignore.py [FILE] [--today YYYY-MM-DD] [--max-days N]

Standard library only, so it runs in any Python image before the dev requirements are installed.
It reads the block YAML that Trivy documents for this file; anchors, tags and flow mappings are
refused rather than guessed at.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SECTIONS = ("vulnerabilities", "misconfigurations", "secrets", "licenses")
ENTRY_KEYS = ("id", "statement", "expired_at", "paths", "purls")
LIST_KEYS = ("paths", "purls")
# An exception dated years ahead is an exception without expiry.
DEFAULT_MAX_DAYS = 366


class Quoted(str):
    """A quoted scalar: YAML reads `"2027-01-31"` as a string, and Trivy then refuses it as a date."""

    __slots__ = ()


class ParseError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class Entry:
    section: str
    line: int
    values: dict[str, object] = field(default_factory=dict)


# --- A strict reader for the block YAML of .trivyignore.yaml -----------------------------------


def _strip_comment(text: str) -> str:
    """`value  # note` -> `value`; a `#` inside quotes or glued to a word is kept."""
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and (index == 0 or text[index - 1] in " [,:"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    return text.rstrip()


def _scalar(raw: str, line: int) -> str | None:
    raw = raw.strip()
    if raw in ("", "~", "null", "Null", "NULL"):
        return None
    if raw[0] in "&*!{|>%@`":
        raise ParseError(line, f"unsupported YAML here: {raw!r}")
    if raw[0] == "'":
        if len(raw) < 2 or not raw.endswith("'"):
            raise ParseError(line, f"unterminated quoted string: {raw}")
        return Quoted(raw[1:-1].replace("''", "'"))
    if raw[0] == '"':
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ParseError(line, f"unreadable double-quoted string: {raw}") from error
        if not isinstance(value, str):
            raise ParseError(line, f"unreadable double-quoted string: {raw}")
        return Quoted(value)
    return raw


def _flow_list(raw: str, line: int) -> list[str | None]:
    inner = raw.strip()[1:-1].strip()
    if not inner:
        return []
    return [_scalar(item, line) for item in re.split(r",(?=(?:[^'\"]|'[^']*'|\"[^\"]*\")*$)", inner)]


def parse(text: str) -> tuple[dict[str, list[Entry]], list[str]]:
    """The sections of a .trivyignore.yaml and the top-level keys Trivy would ignore."""
    lines: list[tuple[int, int, str]] = []  # (line number, indent, content without comment)
    for number, raw in enumerate(text.splitlines(), start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ParseError(number, "tabs are not allowed in YAML indentation")
        content = _strip_comment(raw)
        if not content.strip() or content.strip() in ("---", "..."):
            continue
        lines.append((number, len(content) - len(content.lstrip()), content.strip()))

    sections: dict[str, list[Entry]] = {}
    unknown: list[str] = []
    position = 0
    while position < len(lines):
        number, indent, content = lines[position]
        match = re.fullmatch(r"([A-Za-z_][\w-]*):\s*(.*)", content)
        if indent != 0 or not match:
            raise ParseError(number, f"expected a top-level key such as 'vulnerabilities:', got {content!r}")
        key, rest = match.groups()
        if key in sections:
            raise ParseError(number, f"'{key}' appears twice")
        position += 1
        if key not in SECTIONS:
            unknown.append(key)
        if rest not in ("", "[]", "~", "null"):
            raise ParseError(number, f"'{key}' must be a list of entries")
        entries: list[Entry] = []
        while position < len(lines) and (lines[position][1] > 0 or lines[position][2].startswith("- ")):
            entry, position = _entry(key, lines, position)
            entries.append(entry)
        if rest == "[]" and entries:
            raise ParseError(number, f"'{key}: []' is followed by entries")
        sections[key] = entries
    return sections, unknown


def _entry(section: str, lines: list[tuple[int, int, str]], position: int) -> tuple[Entry, int]:
    number, dash_indent, content = lines[position]
    if not content.startswith("- "):
        raise ParseError(number, f"expected a list item '- id: ...' under '{section}', got {content!r}")
    entry = Entry(section, number)
    key_indent = dash_indent + 2 + (len(content[2:]) - len(content[2:].lstrip()))
    pending: list[tuple[int, int, str]] = [(number, key_indent, content[2:].strip())]
    position += 1
    while position < len(lines) and lines[position][1] > dash_indent:
        pending.append(lines[position])
        position += 1

    index = 0
    while index < len(pending):
        number, indent, content = pending[index]
        index += 1
        if indent != key_indent:
            raise ParseError(number, f"unexpected indentation in the entry that starts on line {entry.line}")
        match = re.fullmatch(r"([A-Za-z_][\w-]*):(?:\s+(.*))?", content)
        if not match:
            raise ParseError(number, f"expected 'key: value', got {content!r}")
        key, raw = match.group(1), (match.group(2) or "").strip()
        if key in entry.values:
            raise ParseError(number, f"'{key}' appears twice in one entry")
        nested = []
        while index < len(pending) and pending[index][1] > key_indent:
            nested.append(pending[index])
            index += 1
        entry.values[key] = _value(key, raw, nested, number)
    return entry, position


def _value(key: str, raw: str, nested: list[tuple[int, int, str]], number: int) -> object:
    """The value of `key: raw`, with the more indented lines that follow it."""
    if raw in ("|", "|-", ">", ">-"):
        return ("\n" if raw[0] == "|" else " ").join(text for _, _, text in nested)
    if raw.startswith("["):
        if not raw.endswith("]") or nested:
            raise ParseError(number, f"unsupported list form for '{key}'")
        return _flow_list(raw, number)
    if not raw and nested:
        items = []
        for item_number, _, text in nested:
            if not text.startswith("- "):
                raise ParseError(item_number, f"expected '- item' under '{key}'")
            items.append(_scalar(text[2:], item_number))
        return items
    if nested:
        raise ParseError(nested[0][0], f"unexpected lines under '{key}'")
    return _scalar(raw, number)


# --- The policy ------------------------------------------------------------------------------


def problems_in(path: Path, today: dt.date, max_days: int = DEFAULT_MAX_DAYS) -> list[str]:
    try:
        sections, unknown = parse(path.read_text(encoding="utf-8"))
    except ParseError as error:
        return [f"{path}:{error.line}: {error} (Trivy's documented format is expected)"]
    problems = [f"{path}: unknown section '{key}': Trivy reads only {', '.join(SECTIONS)}" for key in unknown]
    for entries in sections.values():
        for entry in entries:
            messages = _entry_problems(entry, today, max_days)
            problems.extend(f"{path}:{entry.line}: {message} (SEC-4)" for message in messages)
    return problems


def _entry_problems(entry: Entry, today: dt.date, max_days: int) -> list[str]:
    values = entry.values
    name = f"{entry.section} entry {values.get('id') or '(no id)'}"
    allowed = ", ".join(ENTRY_KEYS)
    problems = [f"{name}: unknown key '{key}' (allowed: {allowed})" for key in values if key not in ENTRY_KEYS]
    if not isinstance(values.get("id"), str) or not values["id"]:
        problems.append(f"{name}: no 'id'")
    for key in LIST_KEYS:
        if key in values and not isinstance(values[key], list):
            problems.append(f"{name}: '{key}' must be a list")
    statement = values.get("statement")
    if not isinstance(statement, str) or not statement.strip():
        problems.append(f"{name}: no 'statement' saying why the finding does not apply")
    expired_at = values.get("expired_at")
    if not isinstance(expired_at, str) or not expired_at:
        problems.append(f"{name}: no 'expired_at' date (YYYY-MM-DD) for its review")
        return problems
    try:
        expiry = dt.date.fromisoformat(expired_at)
    except ValueError:
        problems.append(f"{name}: expired_at '{expired_at}' is not a YYYY-MM-DD date")
        return problems
    if isinstance(expired_at, Quoted):
        problems.append(
            f"{name}: expired_at must be an unquoted date (expired_at: {expired_at}); Trivy fails on a quoted one"
        )
        return problems
    # Trivy stops honouring an entry at 00:00 UTC of its expired_at day.
    if expiry <= today:
        problems.append(f"{name}: expired on {expiry.isoformat()}: fix the finding or re-justify it with a new date")
    elif (expiry - today).days > max_days:
        problems.append(f"{name}: expired_at {expiry.isoformat()} is more than {max_days} days away")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default_file = Path(__file__).resolve().parent.parent / ".trivyignore.yaml"
    parser.add_argument("file", nargs="?", type=Path, default=default_file)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.datetime.now(dt.UTC).date())
    parser.add_argument("--max-days", type=int, default=DEFAULT_MAX_DAYS)
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"{args.file} not found; Trivy is run with --ignorefile {args.file.name}", file=sys.stderr)
        return 1
    problems = problems_in(args.file, args.today, args.max_days)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{args.file.name}: every exception is justified and dated (SEC-4)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
