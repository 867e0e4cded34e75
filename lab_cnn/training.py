"""What a run is: the Trainer with the lab's logger, checkpoints, progress bar and inspection, and the run itself
(``fit``, then the lab's test of the final model; ``test``, ``validate`` or ``predict`` of a checkpoint).

Both ways of starting a run end here: the Python functions (:mod:`lab_cnn.api`) and the ``lab-cnn`` command,
which parse the same arguments with the same parser (:mod:`lab_cnn.lightning_cli`) and call :func:`make_trainer`
and :func:`run`. Everything a run can get wrong is checked before its folder is claimed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.accelerators import AcceleratorRegistry
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf

from lab_cnn import checkpoints
from lab_cnn.callbacks import PredictionCSV, RunLogger
from lab_cnn.checkpoints import AtomicCheckpointIO, Checkpoint
from lab_cnn.data import MNISTDataModule
from lab_cnn.errors import UserError, first_line
from lab_cnn.inspection import Inspection
from lab_cnn.module import Classifier
from lab_cnn.runs import LOG_DIR, check_can_write
from lab_cnn.validators import RECIPE

PROGRESS_REFRESH_STEPS = 20  # redrawing the bar after every step slows a CPU epoch noticeably


@dataclass
class RunResult:
    """What a run gives back. ``metrics``: the final logged values (``test/loss``, ``test/acc``, ... as
    fractions); ``history``: one dict per trained epoch (``train/loss``, ``train/acc`` and, in the epochs
    that validated, ``val/loss``, ``val/acc``); ``log_dir``: the run folder; ``checkpoint``: its
    ``last.ckpt`` (fit); ``predictions``: the CSV ``predict`` wrote."""

    stage: str
    log_dir: Path | None
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    predictions: Path | None = None

    @property
    def test_loss(self) -> float | None:
        return self.metrics.get("test/loss")

    @property
    def test_acc(self) -> float | None:
        return self.metrics.get("test/acc")


class Quieter(logging.Filter):
    """Drops Lightning's advertisements for its cloud logger and model registry, and its "Seed set to N"
    (the seed is in the run's config.yaml), from every run's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(noise in record.getMessage() for noise in ("litlogger", "litmodels", "Seed set to"))


class Held(logging.Filter):
    """Keeps every record a handler is given, instead of letting it through."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


@contextlib.contextmanager
def lines_held_until_accepted() -> Iterator[None]:
    """Lightning's lines of a Trainer being built ("GPU available: False, used: False", ...) held back, and
    shown when the block ends without a refusal: the checks after the Trainer is built (the batch limits)
    refuse a run in its one line alone, as the checks before it do."""
    handlers = [h for name in ("lightning.pytorch", "lightning.fabric") for h in logging.getLogger(name).handlers]
    held = {handler: Held() for handler in handlers}
    for handler, keeper in held.items():
        handler.addFilter(keeper)
    try:
        yield
    finally:
        for handler, keeper in held.items():
            handler.removeFilter(keeper)
    for handler, keeper in held.items():  # reached without a refusal
        for record in keeper.records:
            handler.handle(record)


QUIETED_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed")
RUN_ENVIRONMENT = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")  # what a Trainer's run sets


@contextlib.contextmanager
def run_settings() -> Iterator[None]:
    """What a run sets in the process, set for the run and restored after it (a notebook's session keeps its
    own): the quieting of messages that say nothing about the run (Lightning's tips, a deprecation notice
    Lightning's own code triggers in torch, a warning about step logging: lab-cnn logs per epoch, and
    ModelCheckpoint's "dirpath has changed" when a checkpoint is loaded by another path than it was written
    under), the torch flags that the Trainer's ``deterministic`` and the model's setup change, the environment
    variables Lightning sets for a run (its seed, cuBLAS's workspace), and the random generators the run's seed
    reset (a session's own ``random``, NumPy and torch draws go on as if no run had happened)."""
    quieter = Quieter()
    environment = {name: os.environ.get(name) for name in RUN_ENVIRONMENT}
    generators = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]  # not in torch's stub
    matmul = torch.get_float32_matmul_precision()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).addFilter(quieter)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval")
            warnings.filterwarnings("ignore", message=r"The dirpath has changed from")
            # predict's writer is given the predictions, not the batch indices Lightning cannot infer from our loader
            warnings.filterwarnings("ignore", message=r"Couldn't infer the batch indices")
            yield
    finally:
        for name in QUIETED_LOGGERS:
            logging.getLogger(name).removeFilter(quieter)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        random.setstate(generators[0])
        np.random.set_state(generators[1])
        torch.set_rng_state(generators[2])


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar, counting epochs from 1 of ``max_epochs`` as the per-epoch lines do, without the
    numbers: each finished epoch prints its own line (:meth:`Classifier.on_train_epoch_end`), where the
    bar would show the epoch before's (Lightning updates it before the model logs the epoch)."""

    def __init__(self) -> None:
        super().__init__(refresh_rate=PROGRESS_REFRESH_STEPS)

    def on_train_epoch_start(self, trainer: Trainer, *_: Any) -> None:
        """TQDMProgressBar's, with the epoch counted from 1 (its own "Epoch 0" would flash first)."""
        self.train_progress_bar.reset(convert_inf(self.total_train_batches))
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer: Trainer, pl_module: Any) -> dict[str, Any]:
        return {}


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


def check_checkpoint(stage: str, model: Classifier, data: MNISTDataModule, checkpoint: Checkpoint) -> None:
    """The checkpoint must fit the model and data built from the config (every weight's shape, and the
    arguments it was trained with); a plain state_dict is loaded here."""
    weights = checkpoints.matching_state_dict(model, checkpoint)
    checkpoints.check_same_function(checkpoint, dict(model.hparams), {"normalize": data.normalize}, free=RECIPE)
    if not checkpoint.lightning:
        model.load_state_dict(weights)
        print(f"Weights from {checkpoint.path}", file=sys.stderr)
    elif stage == "fit":
        print(f"Resuming from {checkpoint.path}", file=sys.stderr)


def make_trainer(
    stage: str,
    options: dict[str, Any],
    model: Classifier,
    data: MNISTDataModule,
    *,
    name: str,
    inspect: bool = True,
    checkpoint: Checkpoint | None = None,
    callbacks: list[Callback] | None = None,
) -> Trainer:
    """The Trainer of a run named ``name`` (its folder ``lightning_logs/<name>/version_N``; a checkpoint's own
    run folder for test, validate, predict and a resumed fit), from the Trainer's ``options`` and the
    ``callbacks`` given: the lab's logger, checkpointing, progress bar and inspection are added. The
    checkpoint, the data and the devices are checked first."""
    if checkpoint is not None:
        check_checkpoint(stage, model, data, checkpoint)
    options = dict(options)
    check_devices(options)
    if options.get("max_epochs") is not None and options["max_epochs"] < 1:
        raise UserError(f"trainer.max_epochs: {options['max_epochs']} is not allowed; use a whole number >= 1")
    if options.get("default_root_dir") is not None and options.get("logger") in (None, True):
        raise UserError(  # Lightning's logger would put the run there; lab-cnn's goes to lightning_logs/
            f"trainer.default_root_dir: {options['default_root_dir']!r} is not allowed: a run's logs and checkpoints "
            f"go to {LOG_DIR}/<name>/version_N; choose <name> with --name, or run in another folder"
        )
    for callback in options.get("callbacks") or []:  # one that runs the steps its own way (lab_cnn.fast)
        if hasattr(callback, "check_trainer_options"):
            callback.check_trainer_options(options)
    data.prepare_data()  # a data problem stops the command before it makes a folder
    if options.get("logger") in (None, True):
        options["logger"] = logger_for_run(stage, name, checkpoint)
    options["plugins"] = options.get("plugins") or [AtomicCheckpointIO()]
    if options.get("default_root_dir") is None:  # without a logger, checkpoints still go below lightning_logs/
        options["default_root_dir"] = str(LOG_DIR / name)
    given = [*(options.pop("callbacks", None) or []), *(callbacks or [])]
    ours: list[Callback] = []
    if stage == "fit" and not any(isinstance(c, ModelCheckpoint) for c in given):
        if data.val_size:  # a real hold-out may pick the best model; the test images may not
            ours.append(ModelCheckpoint(monitor="val/acc", mode="max", save_last=True, filename="best-{epoch}"))
        else:  # keep the newest epoch only, and last.ckpt after every epoch, to resume from
            ours.append(ModelCheckpoint(save_top_k=1, save_last=True))
    if options.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
        ours.append(EpochProgressBar())
    if stage == "predict":
        ours.append(PredictionCSV())
    if options.get("logger") is not False:
        ours.append(Inspection(histograms=inspect))
    with lines_held_until_accepted():
        try:
            trainer = Trainer(**options, callbacks=[*given, *ours])
        except (TypeError, ValueError) as e:  # Lightning's own checks of the trainer's arguments
            raise UserError(f"trainer: {first_line(e)}") from None
        overfit = bool(options.get("overfit_batches"))  # Lightning then takes it for the train and val limits
        limits = {
            split: (
                "trainer.overfit_batches"
                if overfit and split in ("train", "val")
                else f"trainer.limit_{split}_batches",
                getattr(trainer, f"limit_{split}_batches"),
            )
            for split in ("train", "val", "test", "predict")
        }
        data.check_batch_limits(stage, limits, trainer.world_size)
        if stage == "predict" and trainer.world_size > 1:  # each process would write its share under all the labels
            raise UserError(
                f"predict runs in one process, and this trainer has {trainer.world_size}: leave out the strategy and "
                "devices of several processes (configs/trainer/ddp*.yaml)"
            )
    return trainer


def logger_for_run(stage: str, name: str, checkpoint: Checkpoint | None) -> RunLogger:
    """``lightning_logs/<name>/``: a new version, or the run folder of the checkpoint resumed or tested."""
    run_dir = checkpoint.run_dir if checkpoint else None
    if checkpoint is not None and run_dir is not None and (stage != "fit" or checkpoint.lightning):
        check_can_write("the checkpoint's run folder", run_dir)  # here, not in TensorBoard's writer thread
        return RunLogger(run_dir.parent.parent, run_dir.parent.name, int(run_dir.name.removeprefix("version_")))
    return RunLogger(LOG_DIR, name)


def run(
    stage: str, trainer: Trainer, model: Classifier, data: MNISTDataModule, checkpoint: Checkpoint | None = None
) -> RunResult:
    """The run: ``fit`` trains (resuming from a Lightning checkpoint) and then tests the final model on the
    10,000 test images, as the lab does; ``test``, ``validate`` and ``predict`` run the checkpoint's model
    (its weights are in ``model`` already when it is a plain state_dict)."""
    ckpt_path = str(checkpoint.path) if checkpoint is not None and checkpoint.lightning else None
    if stage == "fit":
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        trainer.test(model, datamodule=data, verbose=False)
    elif stage == "predict":
        trainer.predict(model, datamodule=data, ckpt_path=ckpt_path, return_predictions=False)
    else:
        getattr(trainer, stage)(model, datamodule=data, ckpt_path=ckpt_path, verbose=False)
        print(f"Logged to {trainer.log_dir}", file=sys.stderr)
    saver = trainer.checkpoint_callback
    last = saver.last_model_path if isinstance(saver, ModelCheckpoint) else ""
    writer = next((c for c in trainer.callbacks if isinstance(c, PredictionCSV)), None)  # type: ignore[attr-defined]
    return RunResult(
        stage,
        log_dir=Path(trainer.log_dir) if trainer.log_dir else None,
        metrics={k: float(v) for k, v in trainer.callback_metrics.items()},
        history=[dict(epoch) for _, epoch in sorted(model.history.items())],
        checkpoint=Path(last) if last else None,
        predictions=writer.path if writer else None,
    )
