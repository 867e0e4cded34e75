"""lab-cnn: the lab's MNIST CNNs in PyTorch Lightning.

A run is a function call: ``lab_cnn.fit(config, ...)``, ``test``, ``validate``, ``predict`` and ``load``
(lab_cnn.api); a mistake raises :class:`UserError`. Lightning is imported on first use, so ``lab_cnn.nets``,
``lab_cnn.mnist`` and the commands that need no training load without it.
"""

from typing import Any

from lab_cnn.compat import allow_tensorflow_beside_torch
from lab_cnn.errors import UserError

allow_tensorflow_beside_torch()

__all__ = [
    "Classifier",
    "LabNet",
    "MNISTDataModule",
    "RunResult",
    "UserError",
    "fit",
    "load",
    "predict",
    "test",
    "validate",
]
WHERE = {
    "fit": "lab_cnn.api",
    "test": "lab_cnn.api",
    "validate": "lab_cnn.api",
    "predict": "lab_cnn.api",
    "load": "lab_cnn.api",
    "RunResult": "lab_cnn.training",
    "MNISTDataModule": "lab_cnn.data",
    "Classifier": "lab_cnn.module",
    "LabNet": "lab_cnn.module",
}


def __getattr__(name: str) -> Any:
    if name in WHERE:
        from importlib import import_module

        return getattr(import_module(WHERE[name]), name)
    raise AttributeError(f"module 'lab_cnn' has no attribute {name!r}")
