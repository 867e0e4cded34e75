"""The one exception type for user mistakes, and the checks that raise it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import NoReturn, TypeVar

T = TypeVar("T")


class UserError(ValueError):
    """A mistake in a config, an argument or a data file: the commands report it in one line, no traceback."""


def positive_int(key: str, value: object) -> int:
    """``value`` if it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key}: {value!r} is not allowed; use a whole number >= 1")
    return value


def whole_number(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; use a whole number >= 1")
    return int(text)


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


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes become a UserError (one line), not usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UserError(message)


def user_error(error: BaseException) -> str | None:
    """The one-line message of a user mistake anywhere in ``error``'s chain; None for a bug."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, UserError):
            return " ".join(str(cause).split())
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, argparse.ArgumentError):
        return " ".join(str(error).split())
    return None


def exit_on_user_error(prog: str, command: Callable[[], None]) -> None:
    """Run ``command``; a user mistake prints ``prog: error: ...`` on stderr and exits 2, a bug raises."""
    try:
        command()
    except Exception as e:
        message = user_error(e)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
