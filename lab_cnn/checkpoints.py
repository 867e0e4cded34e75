"""Checkpoints: written whole or not at all, found (``--ckpt_path last``), and read without running any
code from them (``weights_only=True``). Besides Lightning's checkpoints, a plain ``state_dict`` such
as the lab's ``mnist_cnn_pytorch.py`` saves (``models/mnist_cnn.pth``) is accepted as the weights."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
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
    """A checkpoint file given with ``--ckpt_path``: its weights; Lightning's checkpoints (they can resume a
    run) also carry the model's hyperparameters."""

    path: Path
    state_dict: dict[str, Tensor]
    lightning: bool
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    data_hyperparameters: dict[str, Any] = field(default_factory=dict)
    key: str = "--ckpt_path"  # the option (or argument) that named it, for the messages about it

    @property
    def run_dir(self) -> Path | None:
        return run_folder(self.path)


def run_folder(checkpoint: Path) -> Path | None:
    """The ``version_N`` folder a checkpoint file belongs to, when it is in one (``.../version_N/checkpoints/``)."""
    run = checkpoint.parent.parent
    return run if checkpoint.parent.name == "checkpoints" and run.name.removeprefix("version_").isdigit() else None


def find(value: str, run_dir: Path, key: str = "--ckpt_path") -> Path:
    """The file ``--ckpt_path`` (or ``key``) names: a path, or ``last`` for the newest ``last.ckpt`` of ``run_dir``."""
    if value == "last":
        return newest_last_checkpoint(run_dir)[1]
    if value in LIGHTNING_NAMES or value.startswith("registry:"):
        raise UserError(
            f"{key} {value}: Lightning knows that checkpoint only within one fit; give a checkpoint file, or last"
        )
    if not value.strip():
        raise UserError(f"{key}: '' is not allowed; give a checkpoint file, or last")
    path = Path(value)
    if path.is_dir():
        raise UserError(f"{key}: {value} is a folder; give a checkpoint file, e.g. {path / LAST_CHECKPOINT}")
    if not path.exists():
        raise UserError(f"{key}: {value} does not exist")
    if not path.is_file():
        raise UserError(f"{key}: {value} is not a regular file; give a checkpoint file")
    return path


def load(path: Path, key: str = "--ckpt_path") -> Checkpoint:
    """The weights in ``path``, loaded with ``weights_only=True``: a file that holds more than tensors and
    plain data is refused before anything reads it further. Messages name ``key``."""
    if path.stat().st_size == 0:
        raise UserError(f"{key}: {path} is empty (0 bytes): not a checkpoint")
    try:
        content = torch.load(path, weights_only=True, map_location="cpu")
    except OSError as e:  # the file itself: unreadable for this user, ...
        raise UserError(f"{key}: {path} cannot be read ({e.strerror or first_line(e)})") from None
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e):  # torch names the GLOBAL (a class or function) that plain data never holds
            raise UserError(f"{key}: {path} is not a file torch.save wrote (it does not unpickle)") from None
        raise UserError(f"{key}: {path} refused: it holds more than weights, and loading it could run code") from None
    except Exception as e:  # noqa: BLE001 - whatever makes a file unreadable, the user gets one line
        raise UserError(f"{key}: {path} is not a file torch.save wrote ({type(e).__name__}: {first_line(e)})") from None
    weights = content.get("state_dict", content) if isinstance(content, dict) else None
    if not isinstance(weights, dict) or not weights or not all(isinstance(v, Tensor) for v in weights.values()):
        raise UserError(f"{key}: {path} holds no model weights (neither a Lightning checkpoint nor a state_dict)")
    if "pytorch-lightning_version" in content:
        model, data = content.get("hyper_parameters") or {}, content.get("datamodule_hyper_parameters") or {}
        return Checkpoint(path, weights, lightning=True, hyperparameters=model, data_hyperparameters=data, key=key)
    return Checkpoint(path, weights, lightning=False, key=key)


def matching_state_dict(model: nn.Module, checkpoint: Checkpoint) -> dict[str, Tensor]:
    """The checkpoint's weights under the model's names, refused naming the first layer that differs.
    A plain state_dict of the bare net (the lab script's ``conv1.weight``, ...) is matched to the model's
    ``net.layers.conv1.weight``, ... by the prefix under which most names fit."""
    ours = model.state_dict()
    theirs = checkpoint.state_dict
    if not checkpoint.lightning:
        prefix = max(("", "net.", "net.layers."), key=lambda p: sum(p + k in ours for k in theirs))
        theirs = {prefix + k: v for k, v in theirs.items()}
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        mine, given = ours.get(key), theirs.get(key)
        if mine is None or given is None or mine.shape != given.shape:
            shape = lambda t: "missing" if t is None else tuple(t.shape)  # noqa: E731
            raise UserError(
                f"{checkpoint.key}: {checkpoint.path} does not fit this model: {key} is {shape(given)} in the "
                f"checkpoint and {shape(mine)} in the model; use the config (and overrides) it was trained with"
            )
    return theirs


def check_same_function(
    checkpoint: Checkpoint, model: dict[str, Any], data: dict[str, Any], free: tuple[str, ...]
) -> None:
    """A Lightning checkpoint of lab-cnn records the arguments of its model and data module. The model's,
    but for the ``free`` ones (the training recipe), and the data's normalization must be this command's:
    with another activation or pooling every weight still fits, and the numbers would be of another net.
    Refused naming the first that differs."""
    trained = {f"model.{k}": v for k, v in checkpoint.hyperparameters.items() if k not in free}
    trained |= {f"data.{k}": v for k, v in checkpoint.data_hyperparameters.items() if k == "normalize"}
    given = {f"model.{k}": v for k, v in model.items()} | {f"data.{k}": v for k, v in data.items()}
    plain = lambda value: list(value) if isinstance(value, tuple) else value  # noqa: E731 - YAML keeps no tuples
    for key, value in trained.items():
        if not key.split(".")[1].startswith("_") and key in given and plain(given[key]) != plain(value):
            raise UserError(
                f"{checkpoint.key}: {checkpoint.path} was trained with {key} {value!r} and this command has "
                f"{given[key]!r}; use the config (and overrides) it was trained with"
            )


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"model.lr": 0.01, ...}``; a class's ``init_args`` level is left out of the keys,
    and Lightning's private keys (``_class_path``, ``_instantiator``) are dropped."""
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if str(key).startswith("_"):
            continue
        flat |= flatten(value, prefix if key == "init_args" else f"{prefix}{key}.")
    return {k.rstrip("."): v for k, v in flat.items()}


def check_same_run(path: Path, trained: dict[str, Any], given: dict[str, Any], may_change: tuple[str, ...]) -> None:
    """A resumed fit goes on with the run of the checkpoint at ``path``: every setting of the run that trained it
    (``trained``, flattened) but those that ``may_change`` must be the command's (``given``). Refused naming the
    first that differs."""
    plain = lambda value: list(value) if isinstance(value, tuple) else value  # noqa: E731 - YAML keeps no tuples
    keys = [*trained, *(k for k in given if k not in trained)]
    for key in sorted(keys, key=lambda k: not k.startswith("model.")):  # what the net is, named first
        if key in may_change or key.startswith(tuple(f"{k}." for k in may_change)):
            continue
        if plain(trained.get(key)) != plain(given.get(key)):
            raise UserError(
                f"--ckpt_path: {path} resumes a run trained with {key} {trained.get(key)!r} and this command has "
                f"{given.get(key)!r}; a resumed fit goes on with the run as it was (only trainer.max_epochs may "
                "change): use its settings, or leave out --ckpt_path to start a new run"
            )
