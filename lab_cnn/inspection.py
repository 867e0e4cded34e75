"""What a student looks at in TensorBoard besides the curves: histograms, mistakes, confusions, filters."""

from __future__ import annotations

import warnings
from contextlib import suppress
from typing import Any

from lab_cnn.compat import tensorboard_without_tensorflow

tensorboard_without_tensorflow()  # before anything imports TensorBoard
import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402 - figures without pyplot: the session's backend stays its own
from torch import Tensor, nn  # noqa: E402
from torch.utils.tensorboard.summary import hparams as hparams_summary  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from lab_cnn.features import layer_outputs, maps_image  # noqa: E402
from lab_cnn.nets import IMAGE_SIZE, NUM_CLASSES  # noqa: E402
from lab_cnn.summary import total_params  # noqa: E402

MISTAKES_SHOWN = 36


def confusion_figure(matrix: Tensor) -> Figure:
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ax.imshow(matrix.log1p().numpy(), cmap="Blues")
    for (true, pred), count in zip(
        torch.cartesian_prod(*[torch.arange(NUM_CLASSES)] * 2).tolist(), matrix.flatten().tolist()
    ):
        ax.text(pred, true, str(count), ha="center", va="center", fontsize=7)
    ax.set(xlabel="predicted digit", ylabel="true digit", xticks=range(NUM_CLASSES), yticks=range(NUM_CLASSES))
    ax.set_title(f"Confusion matrix: {int(matrix.trace())}/{int(matrix.sum())} correct")
    return fig


def mistakes_figure(images: Tensor, true: Tensor, predicted: Tensor) -> Figure:
    """The images in one grid (one Axes: fast to draw), each labelled in the band above it with the
    first of ``true`` and ``predicted`` (labels beyond the images are not drawn)."""
    columns, pad, size = 6, 12, images.shape[-1]
    rows = max(1, -(-len(images) // columns))
    fig = Figure(figsize=(columns * 1.3, rows * 1.5))
    ax = fig.subplots()
    ax.axis("off")
    if len(images):
        grid = make_grid(images, nrow=columns, padding=pad, normalize=True, scale_each=True, pad_value=0)
        ax.imshow(grid[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        for i, (t, p) in enumerate(zip(true[: len(images)].tolist(), predicted[: len(images)].tolist())):
            row, column = divmod(i, columns)
            ax.text(
                pad + column * (size + pad) + size / 2,
                row * (size + pad) + pad / 2 + 1,
                f"true {t}, pred {p}",
                ha="center",
                va="center",
                fontsize=7,
            )
    fig.tight_layout()
    return fig


def first_conv_filters(net: nn.Module) -> Tensor | None:
    """The first conv layer's kernels as one grayscale grid image (each kernel scaled to [0, 1])."""
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return None
    kernels = conv.weight.detach().float().cpu()[:, :1]
    size = kernels.shape[-1]
    grid = make_grid(kernels, nrow=8, normalize=True, scale_each=True, padding=1)
    return torch.nn.functional.interpolate(grid[None], scale_factor=max(1, 32 // size), mode="nearest")[0]


def writer_of(trainer: L.Trainer) -> Any:
    """The run's TensorBoard writer; None without a TensorBoard logger (``fast_dev_run``, ``logger: false``)
    and in every process but the first under DDP (it alone writes the run's files)."""
    logger = trainer.logger
    return logger.experiment if isinstance(logger, TensorBoardLogger) and trainer.global_rank == 0 else None


def log_hparams(writer: Any, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
    """The run's knobs for TensorBoard's HParams table, without an experiment summary: TensorBoard then
    lists the knobs of every run it shows (the Keras runs' too), where one run's summary would decide the
    columns for all. Lightning's own keys (``_class_path``, ...) are left out; lists are shown as text."""
    values = {
        k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items() if not k.startswith("_")
    }
    _, session_start, session_end = hparams_summary(values, metrics)
    writer.file_writer.add_summary(session_start)
    writer.file_writer.add_summary(session_end)


class Inspection(L.Callback):
    """Logs the parameter count, the graph, per-epoch histograms of every parameter and its gradient (with
    ``histograms``), and after each test the misclassified digits, the confusion matrix (as an image and
    as counts), the first conv filters and every layer's feature maps of one test digit per class."""

    def __init__(self, histograms: bool = True) -> None:
        self.histograms = histograms

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The parameter count as Keras counts it (BatchNorm statistics included), as ``model/params``; and
        the net's graph, traced once from a blank image (TensorBoard's Graphs tab)."""
        for logger in trainer.loggers:
            logger.log_metrics({"model/params": float(total_params(pl_module))}, step=0)
        if self.histograms and writer_of(trainer):
            blank = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE, device=pl_module.device)
            with warnings.catch_warnings():  # torch.jit.trace's notes about its own future
                warnings.simplefilter("ignore")
                writer_of(trainer).add_graph(pl_module.net, blank.contiguous(memory_format=torch.channels_last))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Once per epoch: every weight, and its gradient in the epoch's last step (TensorBoard cannot
        draw a histogram of NaN or infinite values: a run that diverged stops on its own)."""
        writer = writer_of(trainer)
        if not self.histograms or writer is None:
            return
        for name, param in pl_module.named_parameters():
            for kind, values in (("weights", param.detach()), ("gradients", param.grad)):
                if values is not None and bool(torch.isfinite(values).all()):
                    with suppress(ValueError):  # values TensorBoard cannot bin (a diverged run's 1e30s)
                        writer.add_histogram(f"{kind}/{name}", values.float().cpu(), trainer.current_epoch)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.mistakes: list[tuple[Tensor, Tensor, Tensor]] = []  # images, true and predicted digits

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keeps the first misclassified digits."""
        if sum(len(images) for images, _, _ in self.mistakes) >= MISTAKES_SHOWN:
            return
        x, y = batch
        predicted = outputs.argmax(1)
        wrong = predicted != y
        self.mistakes.append((x[wrong].float().cpu(), y[wrong].cpu(), predicted[wrong].cpu()))

    def on_test_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """The test's figures, and the hyperparameters with the final test metrics (TensorBoard's HParams)."""
        writer, step = writer_of(trainer), pl_module.steps_trained
        if writer is None:
            return
        final = {f"hp/{k.replace('/', '_')}": float(trainer.callback_metrics[k]) for k in ("test/acc", "test/loss")}
        trainer.logger.log_metrics(final, step)  # type: ignore[union-attr]  # the writer's logger
        log_hparams(writer, dict(pl_module.hparams), final)
        matrix = pl_module.test_confusion.cpu()
        writer.add_figure("test/confusion_matrix", confusion_figure(matrix), step)
        digits = range(NUM_CLASSES)
        rows = ["| true \\ predicted | " + " | ".join(map(str, digits)) + " |", "|---" * (NUM_CLASSES + 1) + "|"]
        rows += [f"| {t} | " + " | ".join(map(str, row)) + " |" for t, row in enumerate(matrix.tolist())]
        writer.add_text("test/confusion_counts", "\n".join(rows), step)
        images, true, predicted = (
            (torch.cat(parts)[:MISTAKES_SHOWN] for parts in zip(*self.mistakes))
            if self.mistakes
            else (torch.zeros(0, 1, IMAGE_SIZE, IMAGE_SIZE), torch.zeros(0), torch.zeros(0))
        )
        writer.add_figure("test/misclassified", mistakes_figure(images, true, predicted), step)
        filters = first_conv_filters(pl_module)
        if filters is not None:
            writer.add_image("test/conv1_filters", filters, step)
        log_feature_maps(writer, trainer, pl_module.net, step)


def log_feature_maps(writer: Any, trainer: L.Trainer, net: nn.Module, step: int) -> None:
    """``test/feature_maps/<layer>``: each layer's output for the first test image of each digit, one
    digit (0, 1, ...) under the other, the net in eval mode (what the test measured)."""
    test_set = getattr(trainer.datamodule, "test_set", None)  # type: ignore[attr-defined]  # lab_cnn's data module
    if test_set is None:
        return
    labels = test_set.labels.cpu()
    firsts = [int((labels == digit).nonzero()[0]) for digit in range(NUM_CLASSES) if (labels == digit).any()]
    device, training = next(net.parameters()).device, net.training
    net.eval()
    try:
        digits = [layer_outputs(net, test_set.images[i].to(device).float()) for i in firsts]
    finally:
        net.train(training)
    for i, layer in enumerate(digits[0]):
        writer.add_image(f"test/feature_maps/{layer.name}", maps_image([d[i].output for d in digits]), step)
