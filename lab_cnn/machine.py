"""The machine a measurement was made on, in words: recorded with benchmarks and study runs."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
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


def package_versions() -> dict[str, str]:
    """The versions a result depends on: Python, torch, Lightning, and Keras and TensorFlow when installed."""
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("lightning", "keras", "tensorflow"):
        if importlib.util.find_spec(name):
            versions[name] = importlib.metadata.version(name)
    return versions
