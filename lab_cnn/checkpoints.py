"""Checkpoints: written whole or not at all, found (``--ckpt_path last``), and read without running any
code from them (``weights_only=True``). Besides Lightning's checkpoints, a plain ``state_dict`` such
as the lab's ``mnist_cnn_pytorch.py`` saves (``models/mnist_cnn.pth``) is accepted as the weights."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins import TorchCheckpointIO
from torch import Tensor, nn

from lab_cnn.errors import UserError, first_line
from lab_cnn.runs import LAST_CHECKPOINT, newest_last_checkpoint

# Lightning's names for checkpoints it finds itself, known only inside a fit: not files a user can give.
LIGHTNING_NAMES = ("best", "hpc", "registry")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside it, then renames it into place: a kill while
    saving never leaves a torn ``last.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)


@dataclass
class Checkpoint:
    """A checkpoint file given with ``--ckpt_path``: its weights, and whether Lightning wrote it."""

    path: Path
    state_dict: dict[str, Tensor]
    lightning: bool

    @property
    def run_dir(self) -> Path | None:
        """The ``version_N`` folder the checkpoint belongs to, when it is in one (``.../version_N/checkpoints/``)."""
        run = self.path.parent.parent
        return run if self.path.parent.name == "checkpoints" and run.name.removeprefix("version_").isdigit() else None


def find(value: str, run_dir: Path) -> Path:
    """The file ``--ckpt_path`` names: a path, or ``last`` for the newest ``last.ckpt`` of ``run_dir``."""
    if value == "last":
        return newest_last_checkpoint(run_dir)[1]
    if value in LIGHTNING_NAMES or value.startswith("registry:"):
        raise UserError(
            f"--ckpt_path {value}: Lightning knows that checkpoint only within one fit; give a checkpoint file, or last"
        )
    path = Path(value)
    if path.is_dir():
        raise UserError(f"--ckpt_path: {value} is a folder; give a checkpoint file, e.g. {path / LAST_CHECKPOINT}")
    if not path.is_file():
        raise UserError(f"--ckpt_path: {value} does not exist")
    return path


def load(path: Path) -> Checkpoint:
    """The weights in ``path``, loaded with ``weights_only=True``: a file that holds more than tensors and
    plain data is refused before anything reads it further."""
    try:
        content = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise UserError(
            f"--ckpt_path: {path} refused: it holds more than weights, and loading it could run code"
        ) from None
    except Exception as e:  # noqa: BLE001 - whatever makes a file unreadable, the user gets one line
        raise UserError(
            f"--ckpt_path: {path} is not a readable checkpoint ({type(e).__name__}: {first_line(e)})"
        ) from None
    if isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        return Checkpoint(path, content["state_dict"], lightning=True)
    if isinstance(content, dict) and content and all(isinstance(v, Tensor) for v in content.values()):
        return Checkpoint(path, content, lightning=False)
    raise UserError(f"--ckpt_path: {path} holds no model weights (neither a Lightning checkpoint nor a state_dict)")


def matching_state_dict(model: nn.Module, checkpoint: Checkpoint) -> dict[str, Tensor]:
    """The checkpoint's weights under the model's names, refused naming the first layer that differs.
    A plain state_dict of the bare net (the lab script's ``conv1.weight``, ...) is matched to the model's
    ``net.layers.conv1.weight``, ... by the prefix that makes every name fit."""
    ours = model.state_dict()
    theirs = checkpoint.state_dict
    if not checkpoint.lightning:
        prefix = next((p for p in ("", "net.", "net.layers.") if all(p + k in ours for k in theirs)), "")
        theirs = {prefix + k: v for k, v in theirs.items()}
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        mine, given = ours.get(key), theirs.get(key)
        if mine is None or given is None or mine.shape != given.shape:
            shape = lambda t: "missing" if t is None else tuple(t.shape)  # noqa: E731
            raise UserError(
                f"--ckpt_path: {checkpoint.path} does not fit this model: {key} is {shape(given)} in the checkpoint "
                f"and "
                f"{shape(mine)} in the model; use the config (and overrides) it was trained with"
            )
    return theirs
