"""Syntax checks and small parsers for the configuration files a cluster carries in ConfigMaps:
YAML, JSON, TOML, nginx.conf and fluent-bit's classic format.

``config_problems(key, text)`` is what 3.2.2 uses: it picks the format from the key's file name
and returns what a parser would refuse (an empty list when the text is valid, None when the
format is not one it knows: that entry was not validated).
"""

from __future__ import annotations

import json
import tomllib


def config_problems(key: str, text: str) -> list[str] | None:
    """Syntax problems of a ConfigMap entry, by its file name; [] when it parses, None when
    its file type is none of the known formats (it is then not validated, never "valid")."""
    lower = key.lower()
    if not text.strip():
        return ["empty"]
    if lower.endswith((".yaml", ".yml")):
        return _yaml_problems(text)
    if lower.endswith(".json"):
        return _json_problems(text)
    if lower.endswith(".toml"):
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            return [f"TOML: {exc}"]
        return []
    if "nginx" in lower or (lower.endswith(".conf") and "{" in text and ";" in text):
        return nginx_problems(text)
    return None


def _yaml_problems(text: str) -> list[str]:
    import yaml

    try:
        list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        return [f"YAML: {' '.join(str(exc).split())}"]
    return []


def _json_problems(text: str) -> list[str]:
    try:
        json.loads(text)
    except ValueError as exc:
        return [f"JSON: {exc}"]
    return []


# --- nginx --------------------------------------------------------------------------------


def nginx_problems(text: str) -> list[str]:
    """What ``nginx -t`` would refuse at the syntax level: unbalanced braces, a directive without
    its ``;``, an unterminated quote, a block without a name. (Not directive semantics.)"""
    problems: list[str] = []
    depth, line, pending = 0, 1, 0  # pending: words since the last ; { or }
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
        elif char == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif char in "\"'":
            end = _closing_quote(text, i)
            if end < 0:
                return [*problems, f"line {line}: unterminated {char} quote"]
            line += text.count("\n", i, end)
            pending += 1
            i = end
        elif char == ";":
            if not pending:
                problems.append(f"line {line}: empty directive ';'")
            pending = 0
        elif char == "{":
            if not pending:
                problems.append(f"line {line}: block without a name")
            depth, pending = depth + 1, 0
        elif char == "}":
            if pending:
                problems.append(f"line {line}: directive before '}}' has no ';'")
            if depth == 0:
                problems.append(f"line {line}: unexpected '}}'")
            depth, pending = max(depth - 1, 0), 0
        elif not char.isspace():
            while i + 1 < n and not text[i + 1].isspace() and text[i + 1] not in ";{}#\"'":
                i += 1
            pending += 1
        i += 1
    if pending:
        problems.append("end of file: last directive has no ';'")
    if depth:
        problems.append(f"end of file: {depth} unclosed '{{'")
    return problems


def _closing_quote(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


# --- fluent-bit ---------------------------------------------------------------------------


def fluent_bit_sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """fluent-bit's classic format: ``[SECTION]`` headers and ``Key  value`` lines.

    Returns (section name upper-cased, {key lower-cased: value}) in file order.
    """
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1].strip().upper(), {}))
            continue
        if line.startswith("@") or not sections:
            continue  # @INCLUDE / @SET, or stray text before the first section
        key, _, value = line.partition(" ")
        sections[-1][1][key.strip().lower()] = value.strip()
    return sections


def fluent_bit_match(pattern: str, tag: str) -> bool:
    """fluent-bit's Match: ``*`` matches any run of characters."""
    import fnmatch

    return fnmatch.fnmatchcase(tag, pattern.replace("[", "[[]"))


__all__ = [
    "config_problems",
    "fluent_bit_match",
    "fluent_bit_sections",
    "nginx_problems",
]
