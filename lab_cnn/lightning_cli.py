"""The configs and options of a run, parsed: LightningCLI with the lab's defaults, set through its public hooks.

``lab-cnn fit|validate|test|predict`` and the Python functions of :mod:`lab_cnn.api` both parse their
arguments here and run them with :mod:`lab_cnn.training`: the same arguments make the same run. The config
files, the arguments and the checkpoint (it must fit the model built from the config; a resumed fit must
be the run it resumes) are checked before anything is written.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import sys
from pathlib import Path
from shlex import quote
from typing import Any

import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

import lab_cnn
from lab_cnn import checkpoints, training
from lab_cnn.checkpoints import Checkpoint, flatten
from lab_cnn.config import (
    check_numbers_read_again,
    command_line_mode,
    given,
    model_class_path,
    read_configs,
    read_yaml,
    refused_option_value,
)
from lab_cnn.data import MNISTDataModule
from lab_cnn.errors import ReadsNegativeNumbers, UserError
from lab_cnn.module import Classifier
from lab_cnn.parse_errors import NO_MODEL, describe_parse_error
from lab_cnn.runs import LOG_DIR, checked_run_name
from lab_cnn.validators import seed

CLI_KEYS = ("config", "print_config", "seed_everything", "name", "inspect")
# What a resumed fit may change: how long it trains, what it shows, and where the data is read from.
RESUMABLE_CHANGES = (
    "ckpt_path",
    "trainer.max_epochs",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "data.data_dir",
    "inspect",
)


def resolve_class(class_path: str | None) -> type | None:
    """The class a config names (``lab_cnn.LabNet``, or a name lab_cnn exports), or None."""
    if not class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module) if module else lab_cnn, name)
    except (ImportError, AttributeError):
        return None


class LabArgumentParser(ReadsNegativeNumbers, LightningArgumentParser):
    """LightningCLI's parser, reading ``--model.lr -1e-3`` as a negative number (:class:`ReadsNegativeNumbers`)."""


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
            parser_class=LabArgumentParser,
            save_config_callback=None,  # the run's config.yaml is written by fit's own (instantiate_trainer)
            parser_kwargs={
                "prog": prog,
                "exit_on_error": False,
                "allow_abbrev": False,
                "parser_mode": command_line_mode(),
                "description": "Train and test the lab's CNNs. More commands: data, summary, study, report.",
            },
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
        if printing := [a for a in argv if a.partition("=")[0] == "--print_config"]:
            # jsonargparse prints the config (and exits) inside parse_args, before the checks of its values
            # below and those of the model and data module as they are built (a kernel of 0, a momentum of 2):
            # so the same command without it is checked and its classes built first, and a refused value is
            # never printed. The Trainer is not built: a config for a GPU prints on a machine without one.
            self.parse_values(parser, [a for a in argv if a not in printing])
            getattr(parser, "instantiate", parser.instantiate_classes)(self.config)  # jsonargparse 4.49 renamed it
        subcommand, config = self.parse_values(parser, argv)
        if not subcommand:
            return
        checked_run_name("--name", self.run_name(config))
        # a config given after --ckpt_path may hold ckpt_path: null (a run's config.yaml does): not a choice
        ckpt_path = config.get("ckpt_path") or given(argv, "--ckpt_path")
        if ckpt_path is None and subcommand != "fit":
            raise UserError(
                f"{subcommand} needs --ckpt_path: a checkpoint of a run (e.g. "
                f"{LOG_DIR}/<name>/version_0/checkpoints/last.ckpt), "
                "last for the newest of this config's runs, or a state_dict saved by the lab's script"
            )
        if ckpt_path is not None:
            self.checkpoint = checkpoints.load(checkpoints.find(str(ckpt_path), LOG_DIR / self.run_name(config)))
            config["ckpt_path"] = None
            if subcommand == "fit" and self.checkpoint.lightning:
                self.check_resume(config)

    def parse_values(self, parser: LightningArgumentParser, argv: list[str]) -> tuple[str | None, Any]:
        """``self.config`` parsed from ``argv``, with one-line errors, and the values the parser lets through
        checked; the subcommand and its config (no subcommand: built, not run, as by lab-cnn summary)."""
        configs = read_configs(argv)
        model_class = resolve_class(model_class_path(configs, argv))
        try:
            self.config = parser.parse_args(argv)
        except argparse.ArgumentError as e:
            message = describe_parse_error(str(e), self.known_keys(argv, model_class))
            message = refused_option_value(argv, message) or message
            if message.startswith(NO_MODEL) and (saved := run_config(argv)):
                message = f"{NO_MODEL}; give the config its run saved beside the checkpoint: --config {quote(saved)}"
            raise UserError(message) from None
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        check_numbers_read_again(argv, configs, config)
        if not isinstance(config["seed_everything"], bool):  # LightningCLI seeds before the model is built
            seed("seed_everything", config["seed_everything"])
        return subcommand, config

    def check_resume(self, config: Any) -> None:
        """A resumed fit continues the run it resumes, in that run's folder: any setting but how long it trains
        (and what it shows) must be that run's, as its config.yaml has them; a ``--name`` must be its name."""
        assert self.checkpoint is not None
        run_dir = self.checkpoint.run_dir
        if run_dir is None or not (run_dir / "config.yaml").is_file():
            trained = flatten({"model": self.checkpoint.hyperparameters, "data": self.checkpoint.data_hyperparameters})
            ours = {k: v for k, v in self.dumped_config().items() if k in trained}
            checkpoints.check_same_run(self.checkpoint.path, trained, ours, RESUMABLE_CHANGES)
            return
        if config.get("name") not in (None, run_dir.parent.name):
            raise UserError(
                f"--name {config['name']}: --ckpt_path {self.checkpoint.path} is a checkpoint of the run "
                f"{run_dir}; fit goes on with that run in its folder: leave out --name"
            )
        trained = flatten(read_yaml(run_dir / "config.yaml", "run's config.yaml"))
        checkpoints.check_same_run(self.checkpoint.path, trained, self.dumped_config(), RESUMABLE_CHANGES)

    def dumped_config(self) -> dict[str, Any]:
        """The command's config as its run's config.yaml records it, flattened (lab_cnn.checkpoints.flatten)."""
        dumped = yaml.safe_load(self.parser.dump(self.config, skip_none=False, format="yaml"))
        return flatten(dumped[self.config["subcommand"]])

    def known_keys(self, argv: list[str], model_class: type | None) -> set[str]:
        """Every key the command accepts, for "did you mean": the parser's own reading of the classes' signatures
        (a model's ``**knobs`` resolved to its net's arguments, as the parser resolves them)."""
        subcommand = next((a for a in argv if a in self.subcommands()), "fit")
        keys = ArgumentParser()
        keys.add_class_arguments(Trainer, "trainer")
        keys.add_class_arguments(MNISTDataModule, "data")
        if inspect.isclass(model_class):
            with contextlib.suppress(ValueError, TypeError):  # a class the parser cannot read: no model keys to offer
                keys.add_class_arguments(model_class, "model", fail_untyped=False)
        method = set(inspect.signature(getattr(Trainer, subcommand)).parameters) - {"self", "model"}
        return {key for key, _ in keys.get_defaults().items()} | set(CLI_KEYS) | method

    def run_name(self, config: Any) -> str:
        configs = config.get("config") or []
        if config.get("name") is not None:
            return config["name"]
        return Path(str(configs[0])).stem if configs else "default"

    @property
    def command_run_name(self) -> str:
        """The run name of the command being run (``--name``, or its first config file's name)."""
        return self.run_name(self.config[self.subcommand] if self.subcommand else self.config)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer | None:  # type: ignore[override]  # None without a run
        """The run's Trainer (lab_cnn.training.make_trainer); fit also writes the run's config.yaml. Without a
        subcommand (``run=False``: the model and data module only) there is no run, and no Trainer."""
        if not self.subcommand:
            return None
        subcommand = self.subcommand
        config = self.config_init[subcommand]
        save_config: list[Callback] = []
        # the run's config.yaml; test, validate and predict keep the training's; fast_dev_run has no run folder
        if subcommand == "fit" and not config["trainer"].get("fast_dev_run"):
            save_config.append(SaveConfigCallback(self._parser(subcommand), self.config[subcommand], overwrite=True))
        return training.make_trainer(
            subcommand,
            {**config["trainer"], **kwargs},
            self.model,
            self.datamodule,
            name=self.command_run_name,
            inspect=bool(config["inspect"]),
            checkpoint=self.checkpoint,
            callbacks=save_config,
        )

    def run_stage(self, **_: Any) -> None:
        """The subcommand, run by lab_cnn.training (LightningCLI calls the method named after it)."""
        assert self.subcommand is not None
        self.result = training.run(self.subcommand, self.trainer, self.model, self.datamodule, self.checkpoint)

    fit = validate = test = predict = run_stage


def run_config(argv: list[str]) -> str | None:
    """The config.yaml that fit wrote in the run folder of the checkpoint ``--ckpt_path`` names (through links),
    if there is one, as a path from here."""
    ckpt_path = given(argv, "--ckpt_path")
    folder = checkpoints.run_folder(Path(ckpt_path).resolve()) if ckpt_path else None
    if folder is None or not (folder / "config.yaml").is_file():
        return None
    return os.path.relpath(folder / "config.yaml")


def lightning_cli(argv: list[str] | None, run: bool = True, prog: str = "lab-cnn") -> LabCLI:
    """The LightningCLI of ``argv``: with ``run``, ``argv`` starts with the subcommand, which is run (its
    :class:`~lab_cnn.training.RunResult` is ``.result``); ``run=False`` only builds the model and data module."""
    with training.run_settings():
        return LabCLI(argv, run=run, prog=prog)
