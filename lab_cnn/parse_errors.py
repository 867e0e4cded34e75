"""argparse's and jsonargparse's messages about a bad argument, rewritten as one line that names the key, the
value and what is allowed (recorded messages in tests/recorded_parse_errors.yaml)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from itertools import takewhile

NO_MODEL = "model: no model given"


def did_you_mean(key: str, keys: Iterable[str]) -> str:
    near = difflib.get_close_matches(key, list(keys), n=1)
    return f"did you mean {near[0]}?" if near else "see --help for the valid keys"


def describe_parse_error(message: str, keys: Iterable[str]) -> str:
    """jsonargparse's message for a bad argument as one line: an unknown key with the nearest of
    ``keys``; a class that cannot be imported; a bad value with its key and what is allowed. Any
    other message passes through unchanged (its lines joined)."""
    lines = message.splitlines()
    found = [(i, m.group(1)) for i, line in enumerate(lines) if (m := re.search(r'Parser key "([\w.]+)"', line))]
    path = [key for _, key in found]
    unknown = re.search(r"unrecognized arguments: --([\w.]+)", message) or re.search(
        r"does not accept option '([\w.]+)'", message
    )
    if re.search(r"the following arguments are required: (?:\w+\.)?model\b", message):
        return f"{NO_MODEL}; give a config, e.g. --config configs/baseline.yaml (or --model lab_cnn.LabNet)"
    option = re.search(r"Option '(\w+)' is not accepted", message)
    if unknown or option:
        key = unknown.group(1) if unknown else ".".join([*path[:1], option.group(1)])  # type: ignore[union-attr]
        if unknown and path and "Problem with given class_path" in message:  # the class's own parser's words
            key = f"{path[0]}.{key}"  # --model.model.kernel_size: LabNet's parser has no --model.kernel_size
        return f"{key}: unknown key; {did_you_mean(key, keys)}"
    problem = re.search(r"Problem with given class_path '([^']+)':\n\s*(.+)", message)
    if (
        path
        and problem
        and re.search(r"No module named|module '[\w.]+' has no attribute|Unable to import", problem.group(2))
    ):
        return f"{path[0]}: {problem.group(1)!r} is not a class that can be imported ({problem.group(2).strip()})"
    if path and problem and not problem.group(2).startswith(("Parser key", "Option")):
        return f"{path[0]}: its arguments for {problem.group(1)} are not allowed ({problem.group(2).strip()})"
    scalar = re.search(r'Parser key "(\w+)":\s*Unable to load config \W(\S*?)\W\s', message + " ")
    if scalar:
        return f"{scalar.group(1)}: {scalar.group(2)!r} is not allowed; give its settings as keys and values"
    if not path:
        return " ".join(message.split())
    start, inner = found[-1]
    depth = indent(lines[start])
    block = "\n".join(
        [lines[start], *takewhile(lambda line: not line.strip() or indent(line) > depth, lines[start + 1 :])]
    )
    value = re.search(r"Given value: (.+)", block) or re.search(r"Got value: (.+)", block)
    if not value:
        return " ".join(message.split())
    key = f"{path[0]}.{inner}" if len(path) > 1 and "." not in inner else inner
    given = value.group(1).strip()
    # the parser shows what YAML read as Python shows it: [1, None] for [1, null] (texts in quotes kept)
    given = re.sub(r"'[^']*'|\"[^\"]*\"|\b(None|True|False)\b", lambda m: PYTHON_WORDS.get(m[1], m[0]), given)
    return f"{key}: {given!r} is not allowed; expected {allowed(block)}"


PYTHON_WORDS = {"True": "true", "False": "false", "None": "null"}  # Python's words for YAML's


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def allowed(block: str) -> str:
    """What a key accepts, in words, from jsonargparse's message about it: its choices, or its types."""
    literals = re.findall(r"Literal\[([^\]]+)\]", block)
    if literals:
        return "one of " + ", ".join(dict.fromkeys(v.strip() for group in literals for v in group.split(",")))
    subtypes = re.search(r"Subtypes: \[(.+)\]", block)
    types = (
        subtypes.group(1).split(", ") if subtypes else re.findall(r"Expected a (<class '[\w.]+'>|[\w.\[\]]+)", block)
    )
    return " or ".join(dict.fromkeys(type_name(t) for t in types)) or "see --help for its type"


def type_name(text: str) -> str:
    """``<class 'int'>`` as int, ``collections.abc.Sequence[int]`` as list of int, NoneType as null."""
    name = re.sub(r"<class '([\w.]+)'>", r"\1", text.strip())
    name = re.sub(r"[\w.]*\.(\w+)", r"\1", name)  # no module paths
    name = re.sub(r"^(?:Sequence|list)\[(.+)\]$", r"list of \1", name)
    return {"NoneType": "null", "Sequence": "list"}.get(name, name)
