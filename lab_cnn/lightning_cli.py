"""``lab-cnn fit|validate|test|predict``: LightningCLI with the lab's defaults, set through its public hooks.

Everything a command can get wrong is checked before a run folder is claimed: the config files, the
arguments, the checkpoint (it must fit the model built from the config), the data and the devices.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import AcceleratorRegistry
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import lab_cnn
from lab_cnn import checkpoints
from lab_cnn.callbacks import PredictionCSV, RunLogger
from lab_cnn.checkpoints import AtomicCheckpointIO, Checkpoint
from lab_cnn.config import model_class_path, read_configs
from lab_cnn.data import MNISTDataModule
from lab_cnn.errors import RECIPE, UserError, describe_parse_error, first_line, seed
from lab_cnn.inspection import Inspection
from lab_cnn.module import Classifier
from lab_cnn.runs import LOG_DIR, checked_run_name

PROGRESS_REFRESH_STEPS = 20  # redrawing the bar after every step slows a CPU epoch noticeably
CLI_KEYS = ("config", "print_config", "seed_everything", "name", "inspect")


class Quieter(logging.Filter):
    """Drops Lightning's advertisements for its cloud logger and model registry, and its "Seed set to N"
    (the seed is in the run's config.yaml), from every run's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(noise in record.getMessage() for noise in ("litlogger", "litmodels", "Seed set to"))


def quiet() -> None:
    """What every run would print that says nothing about it: Lightning's tips, a deprecation notice that
    Lightning's own code triggers in torch, a warning about step logging (lab-cnn logs per epoch), and
    ModelCheckpoint's "dirpath has changed" when a checkpoint is loaded by another path than it was written
    under (test, validate and predict use only its weights; fit resumes from the last.ckpt it names)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed"):
        logging.getLogger(name).addFilter(Quieter())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval")
    warnings.filterwarnings("ignore", message=r"The dirpath has changed from")


def check_devices(config: dict[str, Any]) -> None:
    """Stop at once when an accelerator is asked for that this machine has not; on a GPU without bf16,
    fall back from bf16-mixed to 16-mixed."""
    name = config.get("accelerator")
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator: {name!r} but this machine has no CUDA GPU; "
            "leave out configs/trainer/gpu.yaml (or use `make train`) to train on the CPU"
        )
    if (
        isinstance(name, str)
        and name in AcceleratorRegistry
        and not AcceleratorRegistry[name]["accelerator"].is_available()
    ):
        raise UserError(f"trainer.accelerator: {name!r} but this machine has none; leave it out (auto) or use cpu")
    if name in ("gpu", "cuda") and config.get("precision") == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        print("This GPU has no bf16: using precision 16-mixed", file=sys.stderr)
        config["precision"] = "16-mixed"


def resolve_class(class_path: str | None) -> type | None:
    """The class a config names (``lab_cnn.LabNet``, or a name lab_cnn exports), or None."""
    if not class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module) if module else lab_cnn, name)
    except (ImportError, AttributeError):
        return None


class LabCLI(LightningCLI):
    """LightningCLI for the lab's models and MNIST: runs go to ``lightning_logs/<config name>/version_N/``;
    ``fit`` ends with the lab's test of the final model; a checkpoint must fit the model of the config."""

    def __init__(self, args: list[str] | None, run: bool = True, prog: str = "lab-cnn") -> None:
        self.checkpoint: Checkpoint | None = None
        super().__init__(
            Classifier,
            MNISTDataModule,
            subclass_mode_model=True,
            args=args,
            run=run,
            seed_everything_default=1,
            parser_kwargs={
                "prog": prog,
                "exit_on_error": False,
                "allow_abbrev": False,
                "description": "Train and test the lab's CNNs. More commands: data, summary, study, report.",
            },
            save_config_kwargs={"overwrite": True},
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--name",
            type=str | None,
            default=None,
            help=f"Run folder under {LOG_DIR}/ (default: the first config file's name, or 'default').",
        )
        parser.add_argument(
            "--inspect",
            type=bool,
            default=True,
            help="Log per-epoch weight and gradient histograms and the model graph to TensorBoard (false for speed).",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, with one-line errors; then check the run name and find the checkpoint. The model is built
        from the config, so ``ckpt_path`` is kept here and not in the config: LightningCLI would otherwise
        rebuild the model from the checkpoint's own hyperparameters (``before_instantiate_classes`` restores it)."""
        argv = sys.argv[1:] if args is None else list(args)
        model_class = resolve_class(model_class_path(read_configs(argv), argv))
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as e:
            raise UserError(describe_parse_error(str(e), self.known_keys(argv, model_class))) from None
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        checked_run_name("--name", self.run_name(config))
        if not isinstance(config["seed_everything"], bool):
            seed("seed_everything", config["seed_everything"])
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None and subcommand != "fit":
            raise UserError(
                f"{subcommand} needs --ckpt_path: a checkpoint of a run (e.g. "
                f"{LOG_DIR}/<name>/version_0/checkpoints/last.ckpt), "
                "last for the newest of this config's runs, or a state_dict saved by the lab's script"
            )
        if ckpt_path is not None:
            self.checkpoint = checkpoints.load(checkpoints.find(str(ckpt_path), LOG_DIR / self.run_name(config)))
            config["ckpt_path"] = None

    def known_keys(self, argv: list[str], model_class: type | None) -> set[str]:
        """Every key the command accepts, for "did you mean" (from the signatures the parser reads)."""
        subcommand = next((a for a in argv if a in self.subcommands()), "fit")
        keys = {f"trainer.{p}" for p in inspect.signature(Trainer).parameters}
        keys |= {f"data.{p}" for p in inspect.signature(MNISTDataModule).parameters}
        keys |= {f"model.{p}" for p in inspect.signature(model_class).parameters} if model_class else set()
        return (
            keys | set(CLI_KEYS) | set(inspect.signature(getattr(Trainer, subcommand)).parameters) - {"self", "model"}
        )

    def run_name(self, config: Any) -> str:
        configs = config.get("config") or []
        return config.get("name") or (Path(str(configs[0])).stem if configs else "default")

    @property
    def command_run_name(self) -> str:
        """The run name of the command being run (``--name``, or its first config file's name)."""
        return self.run_name(self.config[self.subcommand] if self.subcommand else self.config)

    def before_instantiate_classes(self) -> None:
        if self.checkpoint and self.checkpoint.lightning:
            self.config[self.subcommand]["ckpt_path"] = str(self.checkpoint.path)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer with the lab's logger, checkpointing, progress bar and inspection; the data and the
        devices are checked first."""
        self.check_checkpoint()
        config = self.config_init[self.subcommand]["trainer"] if self.subcommand else self.config_init["trainer"]
        check_devices(config)
        if config.get("max_epochs") is not None and config["max_epochs"] < 1:
            raise UserError(f"trainer.max_epochs: {config['max_epochs']} is not allowed; use a whole number >= 1")
        accumulate, clip = config.get("accumulate_grad_batches", 1), config.get("gradient_clip_val")
        if accumulate != 1 or clip not in (None, 0):  # Lightning's automatic optimization only
            key, value = ("accumulate_grad_batches", accumulate) if accumulate != 1 else ("gradient_clip_val", clip)
            raise UserError(
                f"trainer.{key}: {value!r} is not allowed: lab-cnn's models take their optimizer steps themselves "
                "(several per call on a GPU), which Lightning's option cannot join; leave it out"
            )
        self.datamodule.prepare_data()  # a data problem stops the command before it makes a folder
        inspect_run = bool(self.config_init[self.subcommand]["inspect"]) if self.subcommand else False
        if config.get("logger") in (None, True):
            kwargs["logger"] = self.logger_for_run()
        kwargs["plugins"] = config.get("plugins") or [AtomicCheckpointIO()]
        if config.get("default_root_dir") is None:  # without a logger, checkpoints still go below lightning_logs/
            kwargs["default_root_dir"] = str(LOG_DIR / self.command_run_name)
        given = list(config.get("callbacks") or [])
        ours: list[Any] = []
        if self.subcommand in ("fit", None) and not any(isinstance(c, ModelCheckpoint) for c in given):
            if self.datamodule.val_size:  # a real hold-out may pick the best model; the test images may not
                ours.append(ModelCheckpoint(monitor="val/acc", mode="max", save_last=True, filename="best-{epoch}"))
            else:  # keep the newest epoch only, and last.ckpt after every epoch, to resume from
                ours.append(ModelCheckpoint(save_top_k=1, save_last=True))
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
            ours.append(TQDMProgressBar(refresh_rate=PROGRESS_REFRESH_STEPS))
        if self.subcommand == "predict":
            ours.append(PredictionCSV())
        if config.get("logger") is not False:
            ours.append(Inspection(histograms=inspect_run))
        if self.subcommand != "fit":  # the run's config.yaml stays the one it was trained with
            self.save_config_callback = None
        try:
            return super().instantiate_trainer(**kwargs, callbacks=[*given, *ours])
        except (TypeError, ValueError) as e:  # Lightning's own checks of the trainer's arguments
            raise UserError(f"trainer: {first_line(e)}") from None

    def logger_for_run(self) -> RunLogger:
        """``lightning_logs/<name>/``: a new version, or the run folder of the checkpoint resumed or tested."""
        run_dir = self.checkpoint.run_dir if self.checkpoint else None
        if run_dir is not None and (self.subcommand != "fit" or self.checkpoint.lightning):
            return RunLogger(run_dir.parent.parent, run_dir.parent.name, int(run_dir.name.removeprefix("version_")))
        return RunLogger(LOG_DIR, self.command_run_name)

    def check_checkpoint(self) -> None:
        """The checkpoint must fit the model and data built from the config (every weight's shape, and the
        arguments it was trained with); a plain state_dict is loaded here."""
        if self.checkpoint is None:
            return
        weights = checkpoints.matching_state_dict(self.model, self.checkpoint)
        data = {"normalize": self.datamodule.normalize}
        checkpoints.check_same_function(self.checkpoint, dict(self.model.hparams), data, free=RECIPE)
        if not self.checkpoint.lightning:
            self.model.load_state_dict(weights)
            print(f"Weights from {self.checkpoint.path}", file=sys.stderr)
        elif self.subcommand == "fit":
            print(f"Resuming from {self.checkpoint.path}", file=sys.stderr)

    def after_fit(self) -> None:
        """Test the final model on the 10,000 test images, as the lab does."""
        self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)

    def after_test(self) -> None:
        print(f"Logged to {self.trainer.log_dir}", file=sys.stderr)

    after_validate = after_test


def lightning_cli(argv: list[str] | None, run: bool = True, prog: str = "lab-cnn") -> LabCLI:
    """The LightningCLI; ``run=False`` only builds the model and data module from ``argv`` (no subcommand)."""
    quiet()
    return LabCLI(argv, run=run, prog=prog)
