"""Shared fixtures: the verified MNIST files (``make test`` fetches them first) and real CLI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lab_cnn.data import MNISTDataModule

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "data"
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session")
def datamodule() -> MNISTDataModule:
    dm = MNISTDataModule(data_dir=str(DATA_DIR))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def run(
    *args: str, cwd: Path, command: str = "lab_cnn", timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m <command> ARGS`` as a user would, in ``cwd``; stdout and stderr captured."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def fit_args(config: str, *extra: str) -> list[str]:
    """``fit`` of a shipped config on the repository's data, from any folder."""
    return ["fit", "--config", str(CONFIGS / config), "--data.data_dir", str(DATA_DIR), *extra]


def scalars(run_dir: Path, with_steps: bool = False) -> dict[str, list]:
    """Every scalar tag of a run folder (all its event files, oldest first), read back with TensorBoard's
    own reader: the values, or (step, value) pairs."""
    found: dict[str, list] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) if with_steps else e.value for e in acc.Scalars(tag))
    return found
