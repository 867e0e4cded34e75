"""``lab-cnn`` (also ``lightning`` and ``python -m lab_cnn``): LightningCLI plus ``data`` and ``summary``."""

from __future__ import annotations

import argparse
import csv
import difflib
import gc
import inspect
import os
import pickle
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
import jsonargparse
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins import TorchCheckpointIO

from keras_parity.torch_port import KerasNet
from lab_cnn import LOG_DIR, mnist, run_versions
from lab_cnn.data import MNISTDataModule
from lab_cnn.errors import ArgumentParser, UserError, exit_on_user_error
from lab_cnn.inspection import Inspection, tensorboard_without_tensorflow
from lab_cnn.module import Classifier, LabNet
from lab_cnn.study import report_command, study_command
from lab_cnn.summary import format_summary

MODEL_CLASSES = (LabNet, KerasNet)
EXTRA_COMMANDS = "data, summary, study, report"
LAST_CHECKPOINT = "checkpoints/last.ckpt"  # in each run folder, after every epoch
PROGRESS_REFRESH_STEPS = 20  # redrawing the bar after every step costs ~10% of a CPU epoch


class ClaimingTensorBoardLogger(TensorBoardLogger):
    """Takes ``version_N`` with an atomic mkdir, so runs started at the same moment never share a folder."""

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if self.version_claimed_elsewhere():
            return version
        root = Path(self.root_dir)
        root.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                (root / f"version_{version}").mkdir()
                return version
            except FileExistsError:
                version += 1

    @staticmethod
    def version_claimed_elsewhere() -> bool:
        """Only global rank 0 claims a folder; the checkpoint and config callbacks broadcast its path."""
        from lightning.pytorch.utilities.rank_zero import rank_zero_only

        return getattr(rank_zero_only, "rank", 0) != 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside it, then renames it into place: a kill while
    saving never leaves a torn ``last.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)


class PredictionCSV(BasePredictionWriter):
    """Writes ``predictions.csv`` in the run folder: image, true label (when known), digit, probability, top 3."""

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer: Trainer, pl_module: Any, predictions: Any, batch_indices: Any) -> None:
        probs = torch.cat(predictions).cpu()
        top_p, top_digit = probs.topk(3, dim=1)
        names, labels = trainer.datamodule.predict_names()
        path = Path(trainer.log_dir or ".") / "predictions.csv"
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["image", "label", "digit", "probability", "top3"])
            for name, label, digits, ps in zip(names, labels, top_digit.tolist(), top_p.tolist()):
                top3 = " ".join(f"{d}:{p:.4f}" for d, p in zip(digits, ps))
                out.writerow([name, label, digits[0], f"{ps[0]:.4f}", top3])
                if trainer.datamodule.predict_path:
                    print(f"{name}: {digits[0]}  (top 3: {top3})")
        print(f"Predictions for {len(probs)} images: {path}")


def check_gpu(config: dict[str, Any]) -> None:
    """Stop at once when a GPU is asked for and there is none; fall back to 16-mixed without bf16."""
    if str(config.get("accelerator")) not in ("gpu", "cuda"):
        return
    if not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator: {config['accelerator']!r} but this machine has no CUDA GPU; "
            "leave out configs/trainer/gpu.yaml (or use `make train`) to train on the CPU"
        )
    if config.get("precision") == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        print("This GPU has no bf16: using precision 16-mixed", file=sys.stderr)
        config["precision"] = "16-mixed"


def newest_last_checkpoint(run_dir: Path) -> tuple[int, Path]:
    """The highest ``version_N`` under ``run_dir`` holding ``checkpoints/last.ckpt``."""
    versions = run_versions(run_dir)
    found = [n for n in sorted(versions) if (versions[n] / LAST_CHECKPOINT).is_file()]
    if not found:
        raise UserError(f"--ckpt_path last: no {run_dir}/version_*/{LAST_CHECKPOINT} to resume from")
    return found[-1], versions[found[-1]] / LAST_CHECKPOINT


class LabCLI(LightningCLI):
    """LightningCLI with the lab's defaults: runs go to ``lightning_logs/<config name>/version_N/``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--name", type=Optional[str], default=None,
            help=f"Run folder under {LOG_DIR}/ (default: the first config file's name, or 'default').",
        )
        parser.add_argument(
            "--inspect", type=bool, default=True,
            help="Log per-epoch weight and gradient histograms and the model graph to TensorBoard (false for speed).",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as e:
            keys = {f"model.{k}" for cls in MODEL_CLASSES for k in inspect.signature(cls).parameters}
            for sub in self._subcommand_parsers.values():
                keys.update(sub.get_defaults().keys())
            raise UserError(describe_parse_error(str(e), sorted(keys))) from None

    def _parse_ckpt_path(self) -> None:
        """The model is built from the config, not from a checkpoint's hyperparameters: a checkpoint of
        another architecture is refused, naming the layer (Classifier.on_load_checkpoint). A checkpoint
        that would run code is refused here, before anything else reads it."""
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path") if self.config.get("subcommand") else None
        if ckpt_path and Path(ckpt_path).is_file():
            try:
                torch.load(ckpt_path, weights_only=True, map_location="cpu")
            except pickle.UnpicklingError:
                raise UserError(f"--ckpt_path: {ckpt_path} refused: it holds more than weights, and loading it could run code") from None
            except Exception as e:  # noqa: BLE001 - whatever makes a checkpoint unreadable, the user gets one line
                raise UserError(f"--ckpt_path: {ckpt_path} is not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'})") from None

    def run_name(self) -> str:
        name = self._get(self.config, "name")
        configs = self._get(self.config, "config") or []
        return name or (Path(str(configs[0])).stem if configs else "default")

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        check_gpu(config)
        self.datamodule.prepare_data()  # a data problem stops the run before it claims a log folder
        if config.get("max_epochs") is not None and config["max_epochs"] < 1:
            raise UserError(f"trainer.max_epochs: {config['max_epochs']} is not allowed; use a whole number >= 1")
        version = None
        if self.subcommand == "fit" and self._get(self.config_init, "ckpt_path") == "last":
            version, ckpt = newest_last_checkpoint(LOG_DIR / self.run_name())
            self.config_init[self.subcommand]["ckpt_path"] = str(ckpt)
            print(f"Resuming from {ckpt}", file=sys.stderr)
        inspect_run = bool(self._get(self.config, "inspect"))
        if config.get("logger") in (None, True):
            config["logger"] = ClaimingTensorBoardLogger(
                str(LOG_DIR), name=self.run_name(), version=version, default_hp_metric=False
            )
        if not config.get("plugins"):
            config["plugins"] = [AtomicCheckpointIO()]
        given = config.get("callbacks") or []
        if not any(isinstance(c, ModelCheckpoint) for c in given):
            if self.datamodule.val_size:  # a real hold-out may pick the best model; the test images may not
                callbacks.append(ModelCheckpoint(monitor="val/acc", mode="max", save_last=True, filename="best-{epoch}"))
            else:  # keep the newest epoch only, and last.ckpt after every epoch, to resume from
                callbacks.append(ModelCheckpoint(save_top_k=1, save_last=True))
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
            callbacks.append(TQDMProgressBar(refresh_rate=PROGRESS_REFRESH_STEPS))
        if self.subcommand == "predict":
            callbacks.append(PredictionCSV())
        if config["logger"]:
            callbacks.append(Inspection(histograms=inspect_run))
        return super()._instantiate_trainer(config, callbacks)

    def after_fit(self) -> None:
        """Test the final model on the 10,000 test images, as the lab does."""
        self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)


def describe_parse_error(message: str, keys: list[str]) -> str:
    """jsonargparse's multi-line message as one line naming the key, the value and what is allowed."""
    message = " ".join(message.split())
    outer = re.match(r'Parser key "([\w.]+)"', message)
    unknown = (
        re.search(r"does not accept option '([\w.]+)'", message)
        or re.search(r"unrecognized arguments: --([\w.]+)", message)
        or re.search(r"Option '(\w+)' is not accepted", message)
    )
    if unknown:
        key = unknown.group(1) if not (outer and "class_path" in message) else f"{outer.group(1)}.{unknown.group(1)}"
        near = difflib.get_close_matches(key, keys, n=1)
        return f"{key}: unknown key; " + (f"did you mean {near[0]}?" if near else "see --help for the valid keys")
    if re.search(r"arguments are required: \w+\.model\b", message):
        return "model: none given; add a config (e.g. --config configs/baseline.yaml) or --model LabNet"
    missing = re.search(r'Parser key "config": File does not exist: (.*)', message)
    if missing:
        return f"{missing.group(1)}: config file not found"
    inner = re.search(r'Parser key "(\w+)": Expected a <class \'(\w+)\'>\. Got value: (\S+)', message)
    if outer and inner:
        return f"{outer.group(1)}.{inner.group(1)}: {inner.group(3)} is not allowed; expected {inner.group(2)}"
    nested = re.search(r"NestedArg\(key='(\w+)', val='([^']*)'\)", message)
    if outer and nested:
        return f"{outer.group(1)}.{nested.group(1)}: {nested.group(2)!r} is not allowed; see --help for its type"
    value = re.search(r"Expected a <class '(\w+)'>.*Given value: (.*)$", message)
    if outer and value:
        return f"{outer.group(1)}: {value.group(2)!r} is not allowed; expected {value.group(1)}"
    return message


def data_command(argv: list[str]) -> None:
    parser = ArgumentParser(
        prog="lab-cnn data",
        description="Fetch the four raw MNIST files into DATA_DIR/MNIST/raw and verify each by its official MD5.",
    )
    parser.add_argument("--data-dir", default="data", help="where to put MNIST/raw (default: data)")
    raw = mnist.fetch(parser.parse_args(argv).data_dir)
    for name, md5 in mnist.MD5.items():
        print(f"{raw / name}  MD5 {md5}  OK")


def summary_command(argv: list[str]) -> None:
    parser = jsonargparse.ArgumentParser(
        prog="lab-cnn summary", exit_on_error=False,
        description="Print each layer's output shape and parameter count of a config's model (no data needed). "
        "Model knobs can be overridden, e.g. --model.kernel_size 3.",
    )
    parser.add_argument("--config", action="append", default=[], help="a lab-cnn config file, e.g. configs/baseline.yaml")
    parser.add_subclass_arguments(Classifier, "model", fail_untyped=False, help="the model (default: from the config)")
    model: dict[str, Any] = {"class_path": "lab_cnn.LabNet"}
    for config in read_configs(argv):
        model = config.get("model", model)
    cfg = parser.parse_args(["--model", yaml.safe_dump(model), *argv])
    print(format_summary(parser.instantiate_classes(cfg).model.net))


def read_configs(argv: list[str]) -> list[dict]:
    """The YAML files given with ``--config`` in ``argv``, each read, or a UserError naming the file."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("-c", "--config", action="append", default=[])
    return [read_config(path) for path in pre.parse_known_args(argv)[0].config]


def read_config(path: str) -> dict:
    """A YAML config file, or a UserError naming it."""
    try:
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None


def lightning_cli(argv: list[str] | None, run: bool = True) -> LabCLI:
    """The LightningCLI; ``run=False`` only builds the model and data module from ``argv`` (no subcommand)."""
    tensorboard_without_tensorflow()
    read_configs(sys.argv[1:] if argv is None else argv)  # a missing or broken file is named before parsing
    return LabCLI(
        Classifier, MNISTDataModule, subclass_mode_model=True, args=argv, seed_everything_default=1,
        parser_kwargs={"exit_on_error": False, "allow_abbrev": False, "description": f"Train and test the lab's CNNs. More commands: {EXTRA_COMMANDS}."},
        save_config_kwargs={"overwrite": True}, run=run,
    )


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "data": data_command, "summary": summary_command, "study": study_command, "report": report_command,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line on stderr and exit code 2 for a user mistake, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    prog = "lightning" if Path(sys.argv[0]).name == "lightning" else "lab-cnn"
    if args and args[0] in COMMANDS:
        exit_on_user_error(prog, lambda: COMMANDS[args[0]](args[1:]))
    else:
        exit_on_user_error(prog, lambda: lightning_cli(argv))


def run() -> None:
    """The console commands (``lab-cnn``, ``lightning``, ``python -m lab_cnn``): :func:`main` in a process of its own."""
    # The thousands of objects imported above live until exit: keep them out of the garbage collector's
    # full passes, which would walk them again and again and once more at exit (0.6 s of every run).
    gc.freeze()
    main()
