"""Timing shared by the benchmark cases: each case process writes one JSON result. Torch only: the
plain-loop cases must not pay for importing Lightning (its timing callback is in ``loop_timer``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch


def clock(device: torch.device | str = "cpu") -> float:
    """Seconds on a monotonic clock, after the device has finished its queued work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def write_result(path: str, **result: Any) -> None:
    Path(path).write_text(json.dumps(result))
