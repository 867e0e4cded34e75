"""The one exception type for user mistakes, and the checks that raise it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class UserError(ValueError):
    """A mistake in a config, an argument or a data file: the commands report it in one line, no traceback."""


def positive_int(key: str, value: object) -> int:
    """``value`` if it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key}: {value!r} is not allowed; use a whole number >= 1")
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
