"""The fast path's callback (lab_cnn.fast.StepsPerCall, K steps): K optimizer steps per Lightning step, the same
training step for step; on a GPU replayed from a CUDA graph (the tests marked ``gpu`` run only there:
``pytest -m gpu``)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lightning as L
import pytest
import torch

from keras_parity.module import KerasNet
from lab_cnn.data import MNISTDataModule
from lab_cnn.fast import StepsPerCall, count_optimizer_steps
from lab_cnn.module import LabNet
from tests.helpers import CONFIGS, DATA_DIR, fit_args, run, scalars, steps_per_call

# 10,000 training images (the other 50,000 held out): 79 batches an epoch, the last of 16 images,
# so every K below ends each epoch with a partial chunk.
SMALL_EPOCHS = [
    "--data.val_size",
    "50000",
    "--trainer.limit_val_batches",
    "5",
    "--trainer.limit_test_batches",
    "20",
    "--inspect",
    "false",
    "--trainer.enable_progress_bar",
    "false",
]


def fit_with_steps(tmp_path: Path, config: str, k: int, *extra: str) -> tuple[str, dict[str, list[tuple[int, float]]]]:
    result = run(
        *fit_args(config, *(steps_per_call(k) if k > 1 else []), "--name", f"k{k}", *SMALL_EPOCHS, *extra),
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},  # a core each: the runs go two at a time
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = re.search("Test set:.*", result.stdout).group()
    return line, scalars(tmp_path / "lightning_logs" / f"k{k}" / "version_0", with_steps=True)


# Five trainings of up to 2 epochs (84 s in the suite): make test-long. make test keeps K = 1 vs K = 8 on 45
# batches (tests/test_api.py).
@pytest.mark.long
@pytest.mark.parametrize(
    ("config", "ks", "extra"),
    [
        ("baseline.yaml", (1, 3, 8), ["--trainer.max_epochs", "2"]),
        # the Keras port: BatchNorm statistics and its own dropout; 5,000 training images, 40 batches
        ("keras_relu.yaml", (1, 6), ["--trainer.max_epochs", "1", "--data.val_size", "55000"]),
    ],
)
def test_k_steps_per_call_give_exactly_the_one_step_result(
    config: str, ks: tuple[int, ...], extra: list[str], tmp_path
) -> None:
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(ks, pool.map(lambda k: fit_with_steps(tmp_path, config, k, *extra), ks)))
    (line, metrics), *others = results.values()
    batches = 79 if config == "baseline.yaml" else 40
    assert [step for step, _ in metrics["train/loss"]] == [batches * (e + 1) for e in range(len(metrics["train/loss"]))]
    for other_line, other_metrics in others:
        assert other_line == line
        for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"):
            assert other_metrics[tag] == metrics[tag], tag  # the same values at the same optimizer steps
    for k in ks:
        ckpt = torch.load(tmp_path / f"lightning_logs/k{k}/version_0/checkpoints/last.ckpt", weights_only=True)
        assert ckpt["global_step"] == batches * len(metrics["train/loss"])


def test_count_optimizer_steps_moves_lightnings_global_step() -> None:
    """The one place that reaches into Lightning's loop: a replayed CUDA graph's steps are counted."""
    seen: list[tuple[int, int]] = []

    class Count(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
            before = trainer.global_step
            count_optimizer_steps(trainer, 3)
            seen.append((before, trainer.global_step))

    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=4,  # batches: two calls of 2
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepsPerCall(2), Count()],
    )
    trainer.fit(LabNet(), MNISTDataModule(str(DATA_DIR)))
    assert seen == [(2, 5), (7, 10)]  # 2 steps per call, counted by Lightning, and 3 more each time


def test_the_model_after_a_fast_fit_is_the_textbook_one_again() -> None:
    """The callback takes the model's training step over for a fit only: after it, or after a fit that failed,
    the model trains as Lightning's docs show (its class's training_step, automatic optimization)."""
    for fails in (False, True):
        model, steps = LabNet(), StepsPerCall(4)
        trainer = L.Trainer(
            max_epochs=1,
            limit_train_batches=8,  # batches: two calls of 4
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[steps, *([Fail()] if fails else [])],
        )
        data = MNISTDataModule(str(DATA_DIR))
        try:
            trainer.fit(model, data)
        except RuntimeError as e:
            assert fails and str(e) == "stop here"
        assert model.steps_trained == (4 if fails else 8)  # the chunks' steps were taken, and counted
        assert "training_step" not in vars(model) and model.automatic_optimization
        assert (data.steps_per_call, data.train_batches_limit, trainer.limit_train_batches) == (1, None, 8)


class Fail(L.Callback):
    def on_train_batch_end(self, *_: object) -> None:
        raise RuntimeError("stop here")


def gpu_fit(model: L.LightningModule, precision: str, steps: StepsPerCall | None = None, **data_args) -> float:
    """Test accuracy after one epoch on the GPU, with ``steps`` per call."""
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[steps] if steps else [],
    )
    data = MNISTDataModule(str(DATA_DIR), **data_args)
    trainer.fit(model, data)
    trainer.test(model, data, verbose=False)
    assert trainer.global_step == 469  # every optimizer step counted, replayed or not
    return float(trainer.callback_metrics["test/acc"])


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_a_cuda_graph_replays_the_steps_and_trains_like_eager(precision: str, recwarn) -> None:
    """469 batches: 58 chunks of 8, replayed from the graph after the first two, and one of 5, eager."""
    L.seed_everything(1)  # both start from the same weights
    steps = StepsPerCall(8)
    graphed_acc = gpu_fit(LabNet(), precision, steps)
    assert steps.multi_step.block.graph is not None
    assert not [w for w in recwarn if "graph capture failed" in str(w.message)]
    L.seed_everything(1)
    eager_acc = gpu_fit(LabNet(), precision)
    # one epoch: about 91% (90.7% on the CPU); dropout draws differ between graph and eager
    assert graphed_acc > 0.88 and abs(graphed_acc - eager_acc) < 0.02, (graphed_acc, eager_acc)


@pytest.mark.gpu
def test_the_keras_port_trains_in_a_cuda_graph(recwarn) -> None:
    """BatchNorm's running statistics and the port's dropout, replayed: one epoch learns as on the CPU
    (84.8% there). Its first epoch swings by points with the dropout draws, so it is not compared with
    an eager run (the 5-epoch bench compares it with the lab's figure)."""
    L.seed_everything(1)
    steps = StepsPerCall(8)
    assert gpu_fit(KerasNet(), "32-true", steps, normalize="unit", shuffle=False) > 0.8
    assert steps.multi_step.block.graph is not None
    assert not [w for w in recwarn if "graph capture failed" in str(w.message)]


@pytest.mark.gpu
def test_a_gpu_run_resumes_from_last_ckpt(tmp_path) -> None:
    gpu = ["--config", str(CONFIGS / "trainer" / "gpu.yaml"), "--trainer.enable_progress_bar", "false"]
    fresh = {"cwd": tmp_path, "env": {}}  # new interpreters: CUDA may not start in a fork of one that probed it
    assert run(*fit_args("baseline.yaml", *gpu, "--trainer.max_epochs", "1"), **fresh).returncode == 0
    resumed = run(*fit_args("baseline.yaml", *gpu, "--trainer.max_epochs", "2", "--ckpt_path", "last"), **fresh)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ckpt = torch.load(tmp_path / "lightning_logs/baseline/version_0/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2 * 469 and ckpt["epoch"] == 1
