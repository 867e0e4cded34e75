"""The lab report's own numbers and model summaries (``documented_results.yaml``, transcribed from it)."""

from functools import cache
from pathlib import Path
from typing import Any

import yaml


@cache
def documented() -> dict[str, Any]:
    """The parsed ``documented_results.yaml``: ``keras`` and ``pytorch`` studies, summaries, shapes, params."""
    return yaml.safe_load((Path(__file__).with_name("documented_results.yaml")).read_text())


def documented_at(path: str) -> Any:
    """The numbers at a dotted ``path`` of :func:`documented`, e.g. ``keras.activation_study.relu``; a KeyError
    or TypeError where the path leads nowhere."""
    numbers: Any = documented()
    for part in path.split("."):
        numbers = numbers[part]
    return numbers
