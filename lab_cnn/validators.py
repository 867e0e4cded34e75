"""The checks of a user's values: each returns the value, or raises :class:`~lab_cnn.errors.SettingError` naming
the key, the value and what is allowed."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from typing import TypeVar

import yaml

from lab_cnn.config import other_base_reading, yaml_line
from lab_cnn.errors import SettingError, UserError
from lab_cnn.mnist import TRAIN_SIZE

T = TypeVar("T")
WHOLE_NUMBER = "use a whole number >= 1"
MAX_SEED = 2**32 - 1  # NumPy's, and so Lightning's and TensorFlow's, seeds are 32-bit


def shown(value: object) -> str:
    """``value`` as YAML writes it, which is how the user gave it: ``null``, ``true``, ``[1, null]``; a text
    quoted. (Python's ``None`` and ``True`` are not what a config or a command line says.)"""
    if isinstance(value, str):
        return repr(value)
    try:
        return yaml_line(value)
    except yaml.YAMLError:  # an object no YAML holds (given through the Python API)
        return repr(value)


def positive_int(key: str, value: object) -> int:
    """``value`` if it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingError(key, f"{shown(value)} is not allowed; {WHOLE_NUMBER}")
    return value


def number_text(text: str, check: Callable[[str, object], T], allowed: str) -> T:
    """An argparse option's ``text`` read as ``lab-cnn fit`` reads a number, by YAML 1.1: ``0x10`` is 16 and
    ``1_000`` 1000 in every command; ``017`` and ``1:30``, which YAML reads in base 8 and 60, are refused as fit
    refuses them; a text YAML does not read as a number is one where Python's ``int`` reads it (``٥``, not
    ``²``), as fit's parser has it. Then ``check`` (a rule of this module) takes the number; ``allowed`` says
    what it allows."""
    if reading := other_base_reading(text):
        base, number, as_written = reading
        written = f"{number} or {as_written}" if as_written is not None else str(number)
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; YAML, which reads lab-cnn's configs, takes it in {base}, as {number}: "
            f"write {written}"
        )
    try:
        value = yaml.safe_load(text)
        return check("", int(value) if isinstance(value, str) else value)  # as jsonargparse takes `٥` for 5
    except (yaml.YAMLError, ValueError, UserError):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; {allowed}") from None


def whole_number(text: str) -> int:
    """argparse type: ``text`` read as a whole number >= 1, by :func:`positive_int`'s rule."""
    return number_text(text, positive_int, WHOLE_NUMBER)


def batch_size(key: str, value: object) -> int:
    """``value`` if it is a batch size: a whole number in [1, 60,000], the training images."""
    if (size := positive_int(key, value)) > TRAIN_SIZE:
        raise SettingError(key, f"{size} is not allowed; use a whole number in [1, {TRAIN_SIZE}]")
    return size


def seed(key: str, value: object) -> int:
    """``value`` if it is a seed NumPy takes: a whole number in [0, 2**32 - 1]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise SettingError(key, f"{shown(value)} is not allowed; use a whole number in [0, {MAX_SEED}]")
    return value


def drop_rate(key: str, value: object) -> float:
    """``value`` if it is a dropout probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SettingError(key, f"{shown(value)} is not allowed; use a number in [0, 1)")
    return float(value)


def choice(key: str, value: str, options: Mapping[str, T]) -> T:
    """``options[value]``, or a SettingError listing the allowed names."""
    if value not in options:
        raise SettingError(key, f"{shown(value)} is not allowed; use one of {', '.join(options)}")
    return options[value]


def check_recipe(lr: float = 0.01, momentum: float = 0.0) -> None:
    """The training recipe every lab-cnn model takes beside its net's knobs: SGD's learning rate
    (> 0) and momentum (in [0, 1))."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
        raise SettingError("model.lr", f"{shown(lr)} is not allowed; use a learning rate > 0, e.g. 0.01")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise SettingError("model.momentum", f"{shown(momentum)} is not allowed; use a number in [0, 1), e.g. 0.5")


RECIPE = ("lr", "momentum")  # check_recipe's arguments
