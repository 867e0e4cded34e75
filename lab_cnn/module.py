"""The LightningModules: loss, metrics, optimizer and logging around a plain ``nn.Module`` net."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from lab_cnn.divergence import LossWatch
from lab_cnn.errors import UserError
from lab_cnn.nets import NUM_CLASSES, LabCNN, all_knobs, named_as_model_knobs
from lab_cnn.validators import check_recipe


class EpochMetrics(Metric):
    """Loss and confusion matrix of the images of an epoch: mean loss, and accuracy = trace / sum.

    Updates are plain tensor operations on the device (no host sync, so they can be captured in a
    CUDA graph); loss sums add up in float64, so grouping steps differently gives the same mean.
    """

    full_state_update = False
    loss_sum: Tensor  # the states (add_state), declared for the type checker
    confusion: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("loss_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("confusion", torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, loss_sums: Tensor, predicted: Tensor, target: Tensor) -> None:
        """``loss_sums``: the summed loss of each step (or batch) behind ``predicted`` digits of ``target`` images."""
        self.loss_sum += loss_sums.detach().double().sum()
        cells = torch.arange(NUM_CLASSES**2, device=target.device)
        self.confusion += (
            ((target * NUM_CLASSES + predicted).unsqueeze(1) == cells).sum(0).view(NUM_CLASSES, NUM_CLASSES)
        )

    def compute(self) -> tuple[Tensor, Tensor]:
        """Mean loss and confusion matrix (rows: true digit, columns: predicted)."""
        return (self.loss_sum / self.confusion.sum()).float(), self.confusion


class Classifier(L.LightningModule):
    """Training, metrics and logging shared by the lab's nets.

    ``net`` maps images to log-probabilities; the loss is NLL on them (cross-entropy), the optimizer
    SGD, and Lightning takes the optimizer steps (automatic optimization), as in the Lightning docs. The
    net and its inputs are kept channels-last (NHWC in memory), which oneDNN on the CPU and cuDNN on the
    GPU convolve fastest; results are the same up to float rounding. Logged once per epoch:
    ``train/loss``, ``train/acc`` (train mode, dropout on, as the lab counts it), ``val/loss``,
    ``val/acc``, ``test/loss``, ``test/acc``; each epoch's values are also kept in ``history``.

    The GPU fast path (a Trainer callback, ``configs/trainer/gpu.yaml``) takes several optimizer steps per
    training step, through :meth:`record_train_steps` for the epoch's metrics; this class does not know it.
    """

    def __init__(self, net: nn.Module, lr: float, momentum: float) -> None:
        super().__init__()
        check_recipe(lr, momentum)
        self.net, self.lr, self.momentum = net.to(memory_format=torch.channels_last), lr, momentum
        self.train_metrics, self.val_metrics, self.test_metrics = EpochMetrics(), EpochMetrics(), EpochMetrics()
        self.history: dict[int, dict[str, float]] = {}  # epoch -> the values logged for it
        # Optimizer steps the model took that the Trainer's own count does not show: a loaded checkpoint's, for
        # a test of it; a fit's by another loop (the fast path's), after it. See steps_trained.
        self.trained_steps = 0

    @property
    def steps_trained(self) -> int:
        """The optimizer steps the model has taken, the x-axis of what is logged: of this fit so far, or of the
        checkpoint tested."""
        return max(self.global_step, self.trained_steps)

    def setup(self, stage: str) -> None:
        # `trainer.deterministic: true` also fills every new tensor with NaN, a check for reads of
        # uninitialized memory that slows the Keras port's CPU step; results do not depend on it.
        # (lab_cnn.training.run_settings restores both flags after the run.)
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]  # not in torch's stub
        if self.trainer.strategy.root_device.type == "cuda":  # float32 matrix products on tensor cores (TF32)
            torch.set_float32_matmul_precision("high")

    def forward(self, x: Tensor) -> Tensor:
        """Log-probabilities of images, given in the net's dtype (64-true and bf16-true keep the net in it)."""
        return self.net(x.to(self.dtype).contiguous(memory_format=torch.channels_last))

    def on_train_start(self) -> None:
        """Restore a resumed run's RNG here, after the sanity check, where the uninterrupted run stood."""
        rng = getattr(self, "resumed_rng", {})
        if "rng_torch" in rng:
            torch.set_rng_state(rng["rng_torch"])
        if "rng_cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["rng_cuda"])
        self.losses = LossWatch()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """The loss of a batch, for Lightning's optimizer step."""
        x, y = batch
        log_probs = self(x)
        losses = F.nll_loss(log_probs.float(), y, reduction="none")
        self.record_train_steps(losses.detach().sum()[None], log_probs.detach().argmax(1), y, self.global_step + 1)
        return losses.mean()

    def record_train_steps(self, loss_sums: Tensor, predicted: Tensor, y: Tensor, first_step: int) -> None:
        """The epoch's metrics take the loss sums of the steps from ``first_step`` on (one step here; the fast
        path's K at a time); a NaN stops the run."""
        self.train_metrics.update(loss_sums, predicted, y)
        self.stop_if_diverged(self.losses.watch(loss_sums, first_step))

    def on_validation_model_zero_grad(self) -> None:
        """Keep the gradients through validation (Lightning frees them): the epoch's histograms show the
        last step's, and a replayed CUDA graph writes into their memory."""

    def stop_if_diverged(self, bad: tuple[int, float] | None) -> None:
        """Stop the run at a NaN or infinite loss: every later number would be meaningless."""
        if bad is not None:
            step, value = bad
            raise UserError(
                f"the training loss became {value} at optimizer step {step} (epoch {self.current_epoch + 1}) with "
                f"lr {self.lr} and momentum {self.momentum}: training diverged; try a smaller --model.lr"
            )

    def _evaluate(self, batch: tuple[Tensor, Tensor], metrics: EpochMetrics) -> Tensor:
        """Log-probabilities of a batch; the epoch metrics are updated."""
        x, y = batch
        log_probs = self(x)
        loss_sum = F.nll_loss(log_probs.float(), y, reduction="sum")
        metrics.update(loss_sum, log_probs.argmax(1), y)
        return log_probs

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Log-probabilities, for callbacks that look at the predictions (lab_cnn.inspection)."""
        return self._evaluate(batch, self.test_metrics)

    def predict_step(self, batch: tuple[Tensor, Any], batch_idx: int) -> Tensor:
        """Class probabilities of each image."""
        return self(batch[0]).float().exp()

    def _log_epoch(self, stage: str, metrics: EpochMetrics) -> tuple[Tensor, Tensor]:
        loss, confusion = metrics.compute()
        metrics.reset()
        # already global (torchmetrics syncs across processes); sync_dist only states that. The x-axis
        # ("step") is the optimizer steps taken, whatever the steps per call.
        values = {f"{stage}/loss": loss, f"{stage}/acc": confusion.trace() / confusion.sum()}
        self.log_dict(values, sync_dist=True)
        self.log("step", float(self.steps_trained), sync_dist=True)
        if stage != "test" and self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.history.setdefault(self.current_epoch, {}).update({k: float(v) for k, v in values.items()})
        return loss, confusion

    def on_train_epoch_start(self) -> None:
        """The learning rate as the epoch starts (``lr-SGD``), at once: its time stamp marks the epoch's start."""
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        for logger in self.loggers:
            logger.log_metrics({"lr-SGD": lr}, step=self.global_step)

    def on_train_epoch_end(self) -> None:
        """Log the epoch's training metrics, and print the epoch's line: its own numbers only (an epoch
        that did not validate shows no validation)."""
        self.stop_if_diverged(self.losses.flush())
        self._log_epoch("train", self.train_metrics)
        shown = self.history[self.current_epoch]
        parts = [
            f"{stage} loss {shown[f'{stage}/loss']:.4f}, acc {100 * shown[f'{stage}/acc']:.2f}%"
            for stage in ("train", "val")
            if f"{stage}/loss" in shown
        ]
        self.print(f"Epoch {self.current_epoch + 1}/{self.trainer.max_epochs}: " + " | ".join(parts))

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        loss, confusion = self._log_epoch("test", self.test_metrics)
        self.test_confusion = confusion  # for the test's figures (lab_cnn.inspection)
        correct, total = int(confusion.trace()), int(confusion.sum())
        self.log("test/images", float(total), sync_dist=True)  # the same on every process: the confusion is global
        self.print(f"Test set: Average loss: {loss:.4f}, Accuracy: {correct}/{total} ({100 * correct / total:.0f}%)")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the RNG state (dropout masks), so a resumed run continues exactly where it stopped."""
        checkpoint["rng_torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            checkpoint["rng_cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another architecture, naming the layer; keep its RNG state for training."""
        ours = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in checkpoint.get("state_dict", {}).items()}
        for key in [*ours, *(k for k in theirs if k not in ours)]:
            if ours.get(key) != theirs.get(key):
                raise UserError(
                    f"the checkpoint does not fit this model: {key} is {theirs.get(key, 'missing')} in the checkpoint "
                    f"and {ours.get(key, 'missing')} in the model; use the config (and overrides) it was trained with"
                )
        self.trained_steps = int(checkpoint.get("global_step", 0))
        self.resumed_rng = {k: checkpoint[k] for k in ("rng_torch", "rng_cuda") if k in checkpoint}


class LabNet(Classifier):
    """The lab's PyTorch net (:class:`~lab_cnn.nets.LabCNN`) trained with the lab's recipe.

    The net's knobs (``conv_channels``, ``kernel_size``, ``pool``, ``hidden_units``, ...) are LabCNN's,
    declared there once: jsonargparse reads them through ``**knobs`` (its resolver follows the call), so
    ``--model.init_args.hidden_units 25`` and a config's ``init_args`` reach the net as they are.

    Args:
        lr: SGD learning rate.
        momentum: SGD momentum.
        knobs: the net's, :class:`~lab_cnn.nets.LabCNN`'s arguments.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.5, **knobs: Any) -> None:
        knobs = all_knobs(LabCNN, knobs)  # all of them in the hyperparameters, not only those given
        with named_as_model_knobs():
            net = LabCNN(**knobs)
        super().__init__(net, lr, momentum)
        self.save_hyperparameters()
