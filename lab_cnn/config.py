"""YAML files a user names (run configs, study files): read, or refused in one line naming the file."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from lab_cnn.errors import ReadsNegativeNumbers, UserError, first_line


class NotAConfig(yaml.constructor.ConstructorError):
    """Valid YAML that no file of lab-cnn's holds: a key that is not a text, a list or mapping inside itself."""


# YAML's types that no value of lab-cnn's is, which the parser would take all the same: ``!!binary NTA=`` as
# a list of hidden layers 53 and 48 wide (bytes are a sequence of numbers), ``!!set {50, 20}`` as a list in
# the set's order. A date is text here, as the parser has it (jsonargparse drops YAML's implicit dates).
YAML_TYPE = "tag:yaml.org,2002:"  # a type's tag, as `!!set` abbreviates it
NOT_VALUES = {
    "binary": "binary data",
    "set": "a set",
    "omap": "an ordered mapping",
    "pairs": "a list of pairs",
    "timestamp": "a date",
}


def yaml_line(value: Any) -> str:
    """``value`` as one line of YAML, as a config or a command line writes it: ``[10, 20]``, ``.inf``, ``null``."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("\n").removesuffix("\n...")


def other_base(node: yaml.Node) -> str | None:
    """Why a number of ``node`` is not the number it reads as: YAML 1.1 (PyYAML's, and the parser's) reads
    ``017`` in base 8 (15) and ``1:30`` in base 60 (90), where a setting's reader would see 17 and a time."""
    digits = str(node.value).lstrip("+-").replace("_", "")
    octal = node.tag == YAML_TYPE + "int" and len(digits) > 1 and digits[0] == "0" and digits.isdigit()
    if octal and int(digits, 8) != int(digits):  # `00` and `07` are the same number in either base
        return "base 8"
    if node.tag in (YAML_TYPE + "int", YAML_TYPE + "float") and ":" in digits:
        return "base 60"
    return None


def check_numbers_read_again(argv: list[str], configs: list[tuple[str, dict[str, Any]]], config: Any) -> None:
    """Refuse a number in base 8 or 60 that the parser took for one where the parser mode's check cannot see it:
    jsonargparse reads a text given to a number option again, with its own YAML (``basic_json_or_yaml_load``).
    So a lone value on the command line (``--model.hidden_units 1:30`` is 90; ``017`` is 17, where a config's is
    15) and a quoted one anywhere (``hidden_units: '1:30'`` in a config, ``[20, '017']`` in a list) would become
    numbers. ``configs`` are the files of ``argv`` as read; ``config`` is what the parser made of them all. An
    option that takes text keeps it, and passes (``--trainer.max_time 00:01:30:00``, ``name: '017'``)."""
    given = [(f"{path}: ", parts, text) for path, spec in configs for parts, text in texts(spec)]
    for key, text in option_values(argv):
        try:
            value = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  # a safe loader
        except yaml.YAMLError:  # a lone number in another base (which the mode's loader refuses), or no YAML
            value = text
        lone = not isinstance(value, (dict, list))
        parts: tuple[str | int, ...] = tuple(key.split("."))
        given += [("", parts, text)] if lone else [("", parts + inner, t) for inner, t in texts(value)]
    for where, parts, text in given:
        if not (reading := other_base_reading(text)):
            continue
        base, number, decimal = reading
        value = value_at(config, parts)
        values = value if isinstance(value, list) else [value]  # `--key+ 017`, appended to a list
        numbers = [v for v in values if not isinstance(v, bool) and isinstance(v, (int, float))]
        if (read := next((v for v in numbers if v in (number, decimal)), None)) is not None:
            how = f"as {number}: write {number}"
            if read != number:
                how = f"as {number}, where this option would be {read}: write {number} or {read}"
            key = ".".join(str(part) for part in parts)
            raise UserError(f"{where}{key}: {text!r} is not allowed; YAML reads it in {base}, {how}")


def refused_option_value(argv: list[str], message: str) -> str | None:
    """Why lab-cnn's YAML refuses the value of the option that the parser's one-line ``message`` names, which
    the parser lost: its YAML's refusal leaves the value as text, that the option's type then refuses in words
    of its own (``--trainer '{max_epochs: 017}'``: ``trainer: '{max_epochs' is not allowed``). A quoted number
    in base 8 or 60 (``'1:30'``), which the parser would read again as a number, is named too. None where the
    option's value has no such fault."""
    key = message.partition(":")[0].replace(".init_args.", ".")
    for option, text in option_values(argv):
        if option.replace(".init_args.", ".") != key:
            continue
        try:
            value = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  # a safe loader
        except yaml.constructor.ConstructorError as e:  # lab-cnn's refusals: NotAConfig, a key given twice
            return f"{key}: {text!r} is not allowed; {e.problem}"
        except yaml.YAMLError:  # not YAML: text, as the parser reads it
            continue
        for parts, inner in texts(value):
            if reading := other_base_reading(inner):
                where = ".".join(str(part) for part in (key, *parts))
                return f"{where}: {inner!r} is not allowed; YAML reads it in {reading[0]}, as {reading[1]}"
    return None


def texts(value: Any, parts: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every text in a mapping or list read from YAML, with the keys and indexes down to it."""
    if isinstance(value, str):
        yield parts, value
    for part, inner in (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    ):
        yield from texts(inner, (*parts, part))


def other_base_reading(text: str) -> tuple[str, Any, int | None] | None:
    """A lone YAML value that YAML 1.1 reads in base 8 or 60: the base, YAML's number and (base 8) the number as
    written in base 10, which jsonargparse's first reading takes (``017``: 15 and 17). None for anything else."""
    try:
        node = yaml.compose(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.ScalarNode) or not (base := other_base(node)):
        return None
    return base, yaml.safe_load(text), int(node.value.replace("_", "")) if base == "base 8" else None


def is_mapping(value: Any) -> bool:
    """A dict, or the parser's Namespace (keys, ``in`` and ``[]`` as a dict's)."""
    return isinstance(value, (dict, argparse.Namespace))


def value_at(config: Any, parts: tuple[str | int, ...]) -> Any:
    """What the parser made of the value at ``parts`` (``model``, ``hidden_units``, 1) in ``config``: a class's
    options are in its ``init_args``, and an option of a list of classes (``--trainer.callbacks.patience``) is
    its last item's. None where ``config`` has no such value."""
    value = config
    for part in parts:
        if isinstance(value, list) and value:
            value = value[part] if isinstance(part, int) and part < len(value) else value[-1]
            if isinstance(part, int):
                continue
        if isinstance(part, int):
            return None
        if is_mapping(value) and part not in value and "init_args" in value:
            value = value["init_args"]
        if not is_mapping(value) or part not in value:
            return None
        value = value[part]
    return value


def option_values(argv: list[str]) -> Iterator[tuple[str, str]]:
    """The options of ``argv`` given a value (``--key value`` or ``--key=value``), as the key and the value's text."""
    for i, arg in enumerate(argv):
        if arg.startswith("--") and "=" in arg:
            key, _, text = arg[2:].partition("=")
            yield key.removesuffix("+"), text
        elif arg.startswith("--") and i + 1 < len(argv) and not is_option(argv[i + 1]):
            yield arg[2:].removesuffix("+"), argv[i + 1]


def is_option(arg: str) -> bool:
    """Whether argparse takes ``arg`` for an option, not a value: ``--key``, not ``--- 017`` (a space in it)."""
    return arg.startswith("--") and " " not in arg


def check_values(node: yaml.Node) -> None:
    """Refuse, as :class:`NotAConfig`, a value of a type in :data:`NOT_VALUES` anywhere in the YAML document
    ``node``, a number YAML reads in another base than 10 unless it says so (``0x10`` does) and an alias
    inside what it names (``a: &x [*x]``: a list holding itself)."""
    inside: set[int] = set()  # the lists and mappings from the document down to the one being walked
    done: set[int] = set()  # walked whole: an alias to one of these is no loop (and is not walked again)
    stack: list[tuple[yaml.Node, Iterator[yaml.Node]]] = []

    def enter(child: yaml.Node) -> None:
        if (kind := child.tag.removeprefix(YAML_TYPE)) in NOT_VALUES:
            what = f"{NOT_VALUES[kind]} (!!{kind}) is not a value lab-cnn takes"
            raise NotAConfig(problem=what, problem_mark=child.start_mark)
        if base := other_base(child):
            number = yaml.safe_load(child.value)
            what = f"YAML reads {child.value} in {base}, as {number}; write {number}, or {child.value!r} for a text"
            raise NotAConfig(problem=what, problem_mark=child.start_mark)
        if id(child) not in done and isinstance(child, (yaml.MappingNode, yaml.SequenceNode)):
            inside.add(id(child))
            stack.append((child, iter(children(child))))

    enter(node)
    while stack:
        parent, rest = stack[-1]
        child = next(rest, None)
        if child is None:
            stack.pop()
            inside.discard(id(parent))
            done.add(id(parent))
        elif id(child) in inside:
            raise NotAConfig(problem="an alias inside what its anchor names (a loop)", problem_mark=child.start_mark)
        else:
            enter(child)


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML would keep the last one silently),
    a key that is not a text (``1:``, ``true:``; the parser would fail on it without naming the file), an
    alias inside what it names (which the parser would walk forever) and the types of :data:`NOT_VALUES`."""

    def construct_document(self, node: yaml.Node) -> Any:
        check_values(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == YAML_TYPE + "merge":  # `<<: *base` merges, then keys after it override
                check_merged(key_node, value_node, seen)
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise NotAConfig(
                    problem=f"the key {key!r} is not a text; keys are names, such as model or max_epochs",
                    problem_mark=key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f"the key {key!r} is given twice",
                    problem_mark=key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def check_merged(key_node: yaml.Node, value_node: yaml.Node, seen: set[str]) -> None:
    """A merge (``<<: *base`` or ``<<: [*a, *b]``) given once in its mapping, of mappings that give no key twice
    between them: PyYAML would let the later of two win, where the YAML spec has the earlier win."""
    if "<<" in seen:
        raise yaml.constructor.ConstructorError(problem="the key '<<' is given twice", problem_mark=key_node.start_mark)
    seen.add("<<")
    merged: set[str] = set()
    for mapping in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
        for key, _ in mapping.value if isinstance(mapping, yaml.MappingNode) else []:
            if key.value in merged:
                twice = f"the key {key.value!r} is given by two of the mappings this '<<' merges"
                raise yaml.constructor.ConstructorError(problem=twice, problem_mark=key.start_mark)
            merged.add(key.value)


UniqueKeyLoader.yaml_implicit_resolvers = {  # `2026-12-01` is text, as the parser reads it (its own, not SafeLoader's)
    first: [(tag, pattern) for tag, pattern in resolvers if tag != YAML_TYPE + "timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


COMMAND_LINE_MODE = "lab-cnn"


def command_line_mode() -> str:
    """The jsonargparse parser mode of lab-cnn's commands: its YAML (``yaml``), reading a value that
    :class:`UniqueKeyLoader` refuses (a type of :data:`NOT_VALUES`, a key given twice) as the text it is, which
    the option's type then refuses in one line naming the option, its reason restored by
    :func:`refused_option_value`. Registered here, when a command's parser is made: jsonargparse keeps its
    modes in one table (``set_loader``)."""
    from jsonargparse import get_loader, set_loader

    yaml_load = get_loader("yaml")

    def load(text: str) -> Any:
        yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  # a safe loader; a YAMLError: the parser keeps the text
        return yaml_load(text)

    set_loader(COMMAND_LINE_MODE, load, exceptions=(yaml.YAMLError,))
    return COMMAND_LINE_MODE


def children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes in a YAML mapping (its keys and values) or list; none in a scalar."""
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def read_yaml(path: Path, what: str = "config file") -> dict[str, Any]:
    """The mapping in ``path`` (empty for an empty file); every way it can be unreadable is a UserError."""
    try:
        if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO's reader would wait for a writer
            raise UserError(f"{path}: not a regular file; a {what} is YAML text in a file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a {what}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a text file (byte {e.start} is not UTF-8); a {what} is YAML text") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        spec = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  # a safe loader
    except NotAConfig as e:
        raise UserError(f"{path}: not a {what} lab-cnn can read ({yaml_problem(e)})") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({yaml_problem(e)})") from None
    except (ValueError, RecursionError) as e:  # a number of over 4300 digits; lists nested thousands deep
        raise UserError(f"{path}: not a {what} lab-cnn can read ({first_line(e)})") from None
    if spec is None:
        raise UserError(f"{path}: the {what} is empty")
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a {what} is a mapping of keys to values, not a YAML {type(spec).__name__}")
    return spec


def yaml_problem(e: yaml.YAMLError) -> str:
    """What PyYAML found wrong and where, in one line: ``line 2, column 1: found character '\\t' that cannot
    start any token`` (its own message spreads that over four lines, the text quoted)."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or problem is None:
        return first_line(e)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


class ReadAheadParser(ReadsNegativeNumbers, argparse.ArgumentParser):
    """argparse reading values as the command's own parser does, its mistakes left to that parser."""


def given(argv: list[str], *flags: str, every: bool = False) -> Any:
    """What ``argv`` gives the option ``flags`` name, read ahead of the command's own parser: its last value, or
    with ``every`` all its values in order. One given without a value is left to that parser to refuse."""
    pre = ReadAheadParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    pre.add_argument(*flags, dest="value", action="append" if every else "store", default=[] if every else None)
    try:
        return pre.parse_known_args(argv)[0].value
    except argparse.ArgumentError:  # `--config` last, with no file: the command's parser says so in its words
        return [] if every else None


def config_paths(argv: list[str]) -> list[str]:
    """The files given with ``-c``/``--config`` in ``argv``, in order."""
    return given(argv, "-c", "--config", every=True)


def read_configs(argv: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every config file of ``argv``, read; checked that its sections are mappings (a model may be named
    by its class alone) and that the files name one model class between them."""
    configs = [(path, read_yaml(Path(path))) for path in config_paths(argv)]
    for path, config in configs:
        for section in ("trainer", "model", "data"):
            value = config.get(section)
            if (
                value is not None
                and not isinstance(value, dict)
                and not (section == "model" and isinstance(value, str))
            ):
                raise UserError(
                    f"{path}: {section}: {value!r} is not allowed; give the {section}'s settings as keys and values"
                )
    model_class_path(configs, argv)
    return configs


def model_class_path(configs: list[tuple[str, dict[str, Any]]], argv: list[str]) -> str | None:
    """The model class named by the configs (``model.class_path``) and the command line (``--model X``,
    ``--model.class_path X``). Two different classes are refused, naming where each came from: a
    later one would silently keep the earlier one's arguments. Classes are compared by name."""
    named: list[tuple[str, str]] = []
    for path, config in configs:
        model = config.get("model")
        class_path = model.get("class_path") if isinstance(model, dict) else model
        if isinstance(class_path, str):
            named.append((path, class_path))
    for i, arg in enumerate(argv):
        flag, _, value = arg.partition("=")
        if flag in ("--model", "--model.class_path") and (value or i + 1 < len(argv)):
            value = value or argv[i + 1]
            try:  # a class path, or (--model) a mapping with its class_path
                spec = yaml.safe_load(value)
            except yaml.YAMLError:
                spec = value
            class_path = spec.get("class_path") if isinstance(spec, dict) else spec
            if isinstance(class_path, str):
                named.append((f"{flag} {value}", class_path))
    names = {class_path.rsplit(".", 1)[-1] for _, class_path in named}
    if len(names) > 1:
        (first, a), (second, b) = (
            named[0],
            next(n for n in named if n[1].rsplit(".", 1)[-1] != named[0][1].rsplit(".", 1)[-1]),
        )
        raise UserError(
            f"{first} names the model {a} and {second} names {b}: one run trains one model; give one model config "
            "(trainer configs such as configs/trainer/gpu.yaml stack with it)"
        )
    return named[-1][1] if named else None
