"""User mistakes: the one exception type, the checks that raise it, and the one place
(:func:`exit_on_user_error`) that turns a mistake into one line on stderr and exit code 2.

What counts as a user's mistake: a :class:`UserError`; a bad argument found by argparse or
jsonargparse (rewritten by :func:`describe_parse_error` to name the key, the value and what is
allowed); Lightning's own checks of its arguments (``MisconfigurationException``); and an ``OSError``
on a path (a folder that cannot be written, a file that cannot be read). Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from itertools import takewhile
from typing import NoReturn, TypeVar

T = TypeVar("T")
WHOLE_NUMBER = "use a whole number >= 1"
MAX_SEED = 2**32 - 1  # NumPy's, and so Lightning's and TensorFlow's, seeds are 32-bit
INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)
OUT_OF_MEMORY = re.compile(r"out of memory|can't allocate memory", re.IGNORECASE)  # torch's words, CPU and CUDA


class UserError(ValueError):
    """A mistake in a config, an argument or a data file: the commands report it in one line, no traceback."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (whitespace collapsed), or its type's name when it has none."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[0].split()) if lines else type(error).__name__


def positive_int(key: str, value: object) -> int:
    """``value`` if it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key}: {value!r} is not allowed; {WHOLE_NUMBER}")
    return value


def whole_number(text: str) -> int:
    """argparse type: ``text`` read as a whole number >= 1, by :func:`positive_int`'s rule."""
    try:
        return positive_int("", int(text))
    except (ValueError, UserError):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; {WHOLE_NUMBER}") from None


def seed(key: str, value: object) -> int:
    """``value`` if it is a seed NumPy takes: a whole number in [0, 2**32 - 1]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise UserError(f"{key}: {value!r} is not allowed; use a whole number in [0, {MAX_SEED}]")
    return value


def drop_rate(key: str, value: object) -> float:
    """``value`` if it is a dropout probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f"{key}: {value!r} is not allowed; use a number in [0, 1)")
    return float(value)


def choice(key: str, value: str, options: Mapping[str, T]) -> T:
    """``options[value]``, or a UserError listing the allowed names."""
    if value not in options:
        raise UserError(f"{key}: {value!r} is not allowed; use one of {', '.join(options)}")
    return options[value]


def check_recipe(lr: float = 0.01, momentum: float = 0.0, steps_per_call: int = 1) -> None:
    """The training recipe every lab-cnn model takes beside its net's knobs: SGD's learning rate
    (> 0) and momentum (in [0, 1)), and optimizer steps per Lightning step (a whole number >= 1)."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"model.lr: {lr!r} is not allowed; use a learning rate > 0, e.g. 0.01")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise UserError(f"model.momentum: {momentum!r} is not allowed; use a number in [0, 1), e.g. 0.5")
    positive_int("model.steps_per_call", steps_per_call)


RECIPE = ("lr", "momentum", "steps_per_call")  # check_recipe's arguments


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes become a UserError (one line), not usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UserError(message)


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
    option = re.search(r"Option '(\w+)' is not accepted", message)
    if unknown or option:
        key = unknown.group(1) if unknown else ".".join([*path[:1], option.group(1)])
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
    return f"{key}: {value.group(1).strip()!r} is not allowed; expected {allowed(block)}"


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


def user_error(error: BaseException) -> str | None:
    """The one-line message of a user mistake anywhere in ``error``'s chain; None for a bug."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, UserError):
            return " ".join(str(cause).split())
        if type(cause).__name__ == "MisconfigurationException":  # Lightning's checks of its own arguments
            return first_line(cause)
        if isinstance(cause, OSError) and cause.filename:  # TensorBoard's writer names files in bytes
            return f"{os.fsdecode(cause.filename)}: {cause.strerror or first_line(cause)}"
        if isinstance(cause, MemoryError) or (isinstance(cause, RuntimeError) and OUT_OF_MEMORY.search(str(cause))):
            return f"the model or its batches do not fit in memory ({first_line(cause)}); use smaller settings"
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, argparse.ArgumentError):
        return " ".join(str(error).split())
    return None


def exit_on_user_error(prog: str, command: Callable[[], None]) -> None:
    """Run ``command``; a user mistake prints ``prog: error: ...`` on stderr and exits 2, Ctrl-C one line
    and exit code 130, a bug raises. Output to a pipe closed early (``lab-cnn --help | head -1``) ends the
    command quietly, as Python's docs advise (docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    try:
        try:
            command()
        finally:  # here, where a closed pipe can still be caught, not at exit (also after argparse's --help)
            sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's last flush goes nowhere
        sys.exit(1)
    except KeyboardInterrupt as e:
        print(f"{prog}: interrupted" + (f"; {e}" if str(e) else ""), file=sys.stderr)
        sys.exit(INTERRUPTED)
    except Exception as e:
        message = user_error(e)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
