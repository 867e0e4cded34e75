"""Shared fixtures: the verified MNIST files (``make test`` fetches them first) and real CLI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def run(*args: str, cwd: Path, command: str = "lab_cnn", timeout: int = 600, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """Run ``python -m <command> ARGS`` as a user would, in ``cwd``; stdout and stderr captured."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def fit_args(config: str, *extra: str) -> list[str]:
    """``fit`` of a shipped config on the repository's data, from any folder."""
    return ["fit", "--config", str(CONFIGS / config), "--data.data_dir", str(DATA_DIR), *extra]
