"""Training-loop time of the lab's nets on one GPU for several steps per call (lab_cnn.fast.StepsPerCall) and
precisions, in one process (what ``configs/trainer/gpu.yaml`` chooses from). Prints a Markdown table.

    python -m benchmarks.steps_sweep [--epochs 2] [--data-dir data]
"""

from __future__ import annotations

import argparse

import lightning as L

from benchmarks.timing import clock
from keras_parity.module import KerasNet
from lab_cnn.data import MNISTDataModule
from lab_cnn.fast import StepsPerCall
from lab_cnn.module import LabNet

NETS = {"lab net": (LabNet, "standard", True), "Keras port": (KerasNet, "unit", False)}  # model, normalize, shuffle


class EpochClock(L.Callback):
    """Seconds of each training epoch (the GPU's queued work included)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = clock(pl_module.device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds.append(clock(pl_module.device) - self.started)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--steps", default="1,8,16,32,64", help="steps per call, comma-separated")
    p.add_argument("--accelerator", default="gpu", help="gpu (default), or cpu for a dry run")
    args = p.parse_args()
    print("| net | precision | steps per call | first epoch s | later epochs s (mean) | train acc, last epoch |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, (model_class, normalize, shuffle) in NETS.items():
        for precision in ("32-true", "bf16-mixed"):
            for k in map(int, args.steps.split(",")):
                L.seed_everything(1, verbose=False)
                timer = EpochClock()
                trainer = L.Trainer(
                    accelerator=args.accelerator,
                    devices=1,
                    precision=precision,
                    max_epochs=args.epochs,
                    logger=False,
                    enable_checkpointing=False,
                    enable_progress_bar=False,
                    enable_model_summary=False,
                    limit_val_batches=0,
                    callbacks=[timer, *([StepsPerCall(k)] if k > 1 else [])],
                )
                trainer.fit(
                    model_class(),
                    MNISTDataModule(args.data_dir, normalize=normalize, shuffle=shuffle),  # type: ignore[arg-type]
                )
                later = timer.seconds[1:] or timer.seconds
                acc = float(trainer.callback_metrics["train/acc"])
                print(
                    f"| {name} | {precision} | {k} | {timer.seconds[0]:.3f} | {sum(later) / len(later):.3f} "
                    f"| {100 * acc:.2f}% |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
