"""The LightningModules: loss, metrics, optimizer and logging around a plain ``nn.Module`` net."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassConfusionMatrix

from lab_cnn.errors import UserError
from lab_cnn.nets import IMAGE_SIZE, LabCNN

NUM_CLASSES = 10


class EpochMetrics(nn.Module):
    """Mean loss over the images of an epoch and its confusion matrix (accuracy = trace / sum).

    Updates stay on the device: no host sync per step.
    """

    def __init__(self) -> None:
        super().__init__()
        self.loss = MeanMetric(nan_strategy="disable")
        self.confusion = MulticlassConfusionMatrix(NUM_CLASSES, validate_args=False)

    def update(self, losses: Tensor, log_probs: Tensor, target: Tensor) -> None:
        self.loss.update(losses.detach())
        self.confusion.update(log_probs.detach().argmax(1), target)

    def compute(self) -> tuple[Tensor, Tensor]:
        """Mean loss and confusion matrix (rows: true digit, columns: predicted)."""
        return self.loss.compute(), self.confusion.compute()

    def reset(self) -> None:
        self.loss.reset()
        self.confusion.reset()


class Classifier(L.LightningModule):
    """Training, metrics and logging shared by the lab's nets.

    ``net`` maps images to log-probabilities; the loss is NLL on them (cross-entropy), the optimizer
    SGD. The net and its inputs are kept channels-last (NHWC in memory), which oneDNN on the CPU and
    cuDNN on the GPU convolve fastest; results are the same up to float rounding. Logged once per
    epoch: ``train/loss``, ``train/acc`` (train mode, dropout on, as the lab counts it),
    ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``.
    """

    def __init__(self, net: nn.Module, lr: float, momentum: float) -> None:
        super().__init__()
        self.net, self.lr, self.momentum = net.to(memory_format=torch.channels_last), lr, momentum
        self.train_metrics, self.val_metrics, self.test_metrics = EpochMetrics(), EpochMetrics(), EpochMetrics()
        self.example_input_array = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)  # for the TensorBoard graph

    def setup(self, stage: str) -> None:
        # `trainer.deterministic: true` also fills every new tensor with NaN, a check for reads of
        # uninitialized memory that made a CPU step of the Keras port 61 ms instead of 57; results
        # do not depend on it.
        torch.utils.deterministic.fill_uninitialized_memory = False

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))

    def _step(self, batch: tuple[Tensor, Tensor], metrics: EpochMetrics) -> tuple[Tensor, Tensor]:
        """Mean loss and log-probabilities of a batch; the epoch metrics are updated."""
        x, y = batch
        log_probs = self(x)
        losses = F.nll_loss(log_probs.float(), y, reduction="none")
        metrics.update(losses, log_probs, y)
        return losses.mean(), log_probs

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, self.train_metrics)[0]

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, self.val_metrics)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Log-probabilities, for callbacks that look at the predictions (lab_cnn.inspection)."""
        return self._step(batch, self.test_metrics)[1]

    def predict_step(self, batch: tuple[Tensor, Any], batch_idx: int) -> Tensor:
        """Class probabilities of each image."""
        return self(batch[0]).float().exp()

    def _log_epoch(self, stage: str, metrics: EpochMetrics) -> tuple[Tensor, Tensor]:
        loss, confusion = metrics.compute()
        metrics.reset()
        # already global (torchmetrics syncs across processes); sync_dist only states that
        self.log_dict({f"{stage}/loss": loss, f"{stage}/acc": confusion.trace() / confusion.sum()}, sync_dist=True)
        return loss, confusion

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        loss, confusion = self._log_epoch("test", self.test_metrics)
        correct, total = int(confusion.trace()), int(confusion.sum())
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
        self.resumed_rng = {k: checkpoint[k] for k in ("rng_torch", "rng_cuda") if k in checkpoint}

    def on_train_start(self) -> None:
        """Restore a resumed run's RNG here, after the sanity check, where the uninterrupted run stood."""
        rng = getattr(self, "resumed_rng", {})
        if "rng_torch" in rng:
            torch.set_rng_state(rng["rng_torch"])
        if "rng_cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["rng_cuda"])


class LabNet(Classifier):
    """The lab's PyTorch net (:class:`~lab_cnn.nets.LabCNN`) trained with the lab's recipe.

    Args:
        conv_channels: output channels of each conv block; its length is the number of blocks.
        kernel_size: side of every conv kernel.
        pool: ``max`` or ``avg`` pooling.
        pool_size: side (and stride) of every pooling window.
        activation: relu, sigmoid, tanh, leaky_relu, elu or gelu, for conv blocks and hidden layers.
        hidden_units: width of the hidden layer, or a list of widths for several.
        dropout: dropout rate after each hidden layer.
        conv_dropout: Dropout2d rate after the second and later convs.
        lr: SGD learning rate.
        momentum: SGD momentum.
    """

    def __init__(
        self,
        conv_channels: Sequence[int] = (10, 20),
        kernel_size: int = 5,
        pool: str = "max",
        pool_size: int = 2,
        activation: str = "relu",
        hidden_units: int | Sequence[int] = 50,
        dropout: float = 0.5,
        conv_dropout: float = 0.5,
        lr: float = 0.01,
        momentum: float = 0.5,
    ) -> None:
        net = LabCNN(conv_channels, kernel_size, pool, pool_size, activation, hidden_units, dropout, conv_dropout)
        super().__init__(net, lr, momentum)
        self.save_hyperparameters()
