"""lab-cnn: the lab's MNIST CNNs in PyTorch Lightning.

The Lightning classes are imported on first use, so ``lab_cnn.nets``, ``lab_cnn.mnist`` and the
commands that need no training load without Lightning.
"""

from typing import Any

from lab_cnn.compat import allow_tensorflow_beside_torch

allow_tensorflow_beside_torch()

__all__ = ["Classifier", "LabNet", "MNISTDataModule"]


def __getattr__(name: str) -> Any:
    if name == "MNISTDataModule":
        from lab_cnn.data import MNISTDataModule

        return MNISTDataModule
    if name in ("Classifier", "LabNet"):
        from lab_cnn import module

        return getattr(module, name)
    raise AttributeError(f"module 'lab_cnn' has no attribute {name!r}")
