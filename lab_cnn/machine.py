"""The machine a measurement was made on, in words: recorded with benchmarks and study runs."""

from __future__ import annotations

import os
from pathlib import Path


def describe_machine() -> str:
    """CPU model, cores and memory of this machine, and its GPU when it has one."""
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {memory_gb:.0f} GB{gpu}"
