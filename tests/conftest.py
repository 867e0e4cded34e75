"""Shared fixtures and hooks: the verified MNIST files (``make test`` fetches them first); tests marked ``gpu``
skip themselves without a CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from lab_cnn.data import MNISTDataModule
from tests.helpers import DATA_DIR


@pytest.fixture(scope="session")
def datamodule() -> MNISTDataModule:
    dm = MNISTDataModule(data_dir=str(DATA_DIR))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not torch.cuda.is_available():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs these there)"))
