"""What a run writes besides its checkpoints: its TensorBoard folder and the predictions CSV."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lab_cnn.handwriting import contact_sheet
from lab_cnn.runs import claim_version


class RunLogger(TensorBoardLogger):
    """TensorBoard's logger for ``<save_dir>/<name>/version_N``. Without a given version, N is claimed
    (:func:`~lab_cnn.runs.claim_version`) when the folder is first needed, by the process of global
    rank 0 only: every check a command makes comes first, so a refused command leaves no folder."""

    def __init__(self, save_dir: str | Path, name: str, version: int | None = None) -> None:
        super().__init__(str(save_dir), name=name, version=version, default_hp_metric=False)
        self.claimed = version

    @property
    def version(self) -> int:
        if self.claimed is None:
            rank = getattr(rank_zero_only, "rank", 0)  # set by Lightning on the function object
            self.claimed = claim_version(Path(self.root_dir)) if rank == 0 else int(super().version)
        return self.claimed


def predictions_name(predict_path: str | None) -> str:
    """``predictions.csv`` for the test images; ``predictions-<folder>.csv`` for your own images."""
    if predict_path is None:
        return "predictions"
    path = Path(predict_path)
    name = path.stem if path.is_file() else Path(predict_path.split("*")[0]).name or path.parent.name
    return "predictions-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "images")


class PredictionCSV(BasePredictionWriter):
    """Writes the predictions to the run folder: a CSV (image, true label when known, digit, probability,
    top 3) and, for your own images, a contact sheet PNG beside it (each input, what the net saw, the digit)."""

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")
        self.path: Path | None = None  # the CSV, once written

    def write_on_epoch_end(self, trainer: Trainer, pl_module: Any, predictions: Any, batch_indices: Any) -> None:
        data: Any = trainer.datamodule  # type: ignore[attr-defined]  # the MNISTDataModule; set at run time
        probs = torch.cat(predictions).cpu()
        top_p, top_digit = probs.topk(3, dim=1)
        names, labels = data.predict_names()
        path = Path(trainer.log_dir or ".") / f"{predictions_name(data.predict_path)}.csv"
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["image", "label", "digit", "probability", "top3"])
            for name, label, digits, ps in zip(names, labels, top_digit.tolist(), top_p.tolist()):
                top3 = " ".join(f"{d}:{p:.4f}" for d, p in zip(digits, ps))
                out.writerow([name, label, digits[0], f"{ps[0]:.4f}", top3])
                if data.predict_path:
                    print(f"{name}: {digits[0]}  (top 3: {top3})")
        self.path = path
        print(f"Predictions for {len(probs)} images: {path}")
        if data.predict_path:
            sheet = path.with_suffix(".png")
            contact_sheet(data.predict_digits, top_digit[:, 0].tolist(), top_p[:, 0].tolist(), sheet)
            print(f"What the net saw of each: {sheet}")
