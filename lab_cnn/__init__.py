"""lab-cnn: the lab's MNIST CNNs in PyTorch Lightning.

The Lightning classes are imported on first use, so ``lab_cnn.nets`` and ``lab_cnn.mnist`` load
without Lightning (plain scripts and the benchmarks use them that way).
"""

from pathlib import Path
from typing import Any

__all__ = ["Classifier", "KERAS_LOG_DIR", "LOG_DIR", "LabNet", "MNISTDataModule", "run_versions"]

LOG_DIR = Path("lightning_logs")  # every run's TensorBoard folder is below it
KERAS_LOG_DIR = LOG_DIR / "keras"  # keras-parity runs, so one TensorBoard shows both frameworks


def run_versions(run_dir: Path) -> dict[int, Path]:
    """The ``version_N`` folders of one run name (``LOG_DIR/<name>/``), by N."""
    found = (p for p in run_dir.glob("version_*") if p.name.removeprefix("version_").isdigit())
    return {int(p.name.removeprefix("version_")): p for p in found}


def __getattr__(name: str) -> Any:
    if name == "MNISTDataModule":
        from lab_cnn.data import MNISTDataModule

        return MNISTDataModule
    if name in ("Classifier", "LabNet"):
        from lab_cnn import module

        return getattr(module, name)
    raise AttributeError(f"module 'lab_cnn' has no attribute {name!r}")
