"""``keras-parity`` (also ``python -m keras_parity``): the lab's ``mnist_cnn_keras.py`` interface.

    keras-parity --mode train --batch-size 128 --epochs 5 --model_path models/mnist_cnn.keras
    keras-parity --mode test --model_path models/mnist_cnn.keras
    keras-parity --mode summary [--activation tanh] [--conv-layers 1]

It imports Keras and TensorFlow, not Lightning. Every argument is checked before training.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from keras_parity.nets import ACTIVATIONS, KERAS_LR, KERAS_MOMENTUM, keras_settings
from lab_cnn import mnist
from lab_cnn.errors import MAX_SEED, ArgumentParser, UserError, exit_on_user_error, first_line, seed, whole_number
from lab_cnn.nets import NUM_CLASSES
from lab_cnn.runs import KERAS_LOG_DIR, check_can_write, checked_run_name


def seed_number(text: str) -> int:
    """argparse type: a seed, by :func:`lab_cnn.errors.seed`'s rule."""
    try:
        return seed("", int(text))
    except (ValueError, UserError):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; use a whole number in [0, {MAX_SEED}]") from None


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="keras-parity", description="Train, test or summarize the lab's Keras CNN on MNIST.")
    p.add_argument("--mode", choices=["train", "test", "summary"], required=True, help="what to do")
    p.add_argument("--batch-size", type=whole_number, default=128, help="images per batch (default 128)")
    p.add_argument("--epochs", type=whole_number, default=5, help="training epochs (default 5)")
    p.add_argument(
        "--model_path", "--model-path", default="models/mnist_cnn.keras", help="the .keras file to write or read"
    )
    p.add_argument(
        "--activation", choices=list(ACTIVATIONS), default="relu", help="Conv2D/Dense activation (default relu)"
    )
    p.add_argument("--conv-layers", type=whole_number, default=2, help="number of conv blocks (default 2)")
    p.add_argument(
        "--seed", type=seed_number, default=1, help=f"seed of Python, NumPy and TensorFlow, 0..{MAX_SEED} (default 1)"
    )
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (default data; fetched if missing)")
    p.add_argument(
        "--run", default=None, help=f"TensorBoard folder under {KERAS_LOG_DIR}/ (default: the model file's name)"
    )
    p.add_argument(
        "--limit-batches", type=whole_number, default=None, help="train on the first N batches only (quick checks)"
    )
    return p


def keras_arrays(data_dir: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """The verified MNIST split as the Keras lab feeds it: pixels /255 as (N, 28, 28, 1), one-hot labels."""
    images, labels = mnist.read_split(data_dir, train)
    return images[..., None].astype("float32") / 255, np.eye(NUM_CLASSES, dtype="float32")[labels]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    from keras_parity.keras_model import keras, tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def checked_model_path(path: str, writing: bool) -> Path:
    """``--model_path``: a ``.keras`` file; to write it, a folder that exists or can be made, and can be written."""
    model_path = Path(path)
    if model_path.suffix != ".keras":
        raise UserError(
            f"--model_path: {path!r} is not allowed; Keras 3 saves models as .keras files, e.g. models/mnist_cnn.keras"
        )
    if writing:
        if model_path.is_dir():
            raise UserError(f"--model_path: {path} is a folder; give a .keras file name")
        check_can_write("--model_path", model_path.parent)
    elif not model_path.exists():
        raise UserError(f"--model_path: {path} does not exist; train first with --mode train")
    elif not model_path.is_file():
        raise UserError(f"--model_path: {path} is not a regular file; give a .keras file")
    return model_path


def load(model_path: Path):
    """A saved model, loaded with ``safe_mode=True`` (no arbitrary code from the file)."""
    from keras_parity.keras_model import keras

    try:
        return keras.saving.load_model(model_path, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"--model_path: {model_path} is not a readable Keras model ({first_line(e)})") from None


def run_dir(args) -> Path:
    """The run's TensorBoard folder, ``lightning_logs/keras/<run>/``, checked that it can be written."""
    folder = KERAS_LOG_DIR / checked_run_name("--run", args.run or Path(args.model_path).stem, reserved=())
    check_can_write("--run", folder)
    return folder


def scalar_logger(log_dir: Path):
    """``log(step, values)``: scalars under lab-cnn's names (train/loss, test/acc, ...) in ``log_dir``,
    at lab-cnn's x-axis (optimizer steps taken), so one TensorBoard compares both frameworks."""
    from keras_parity.keras_model import tf

    writer = tf.summary.create_file_writer(str(log_dir))

    def log(step: int, values: dict[str, float]) -> None:
        with writer.as_default():
            for tag, value in values.items():
                tf.summary.scalar(tag, value, step=step)
        writer.flush()

    return log


def hyperparameters(model: Any) -> dict[str, float | int | str]:
    """The model's knobs, read from its layers, under the names KerasNet (the port) gives them: for
    TensorBoard's HParams table beside lab-cnn's runs."""
    return {**keras_settings(model), "lr": KERAS_LR, "momentum": KERAS_MOMENTUM}


def train(args) -> None:
    model_path = checked_model_path(args.model_path, writing=True)
    log_dir = run_dir(args)
    mnist.ensure(args.data_dir)  # fetched when missing, refused when wrong
    from keras_parity.keras_model import build_model, keras

    seed_everything(args.seed)
    x, y = keras_arrays(args.data_dir, train=True)
    if args.limit_batches:
        x, y = x[: args.limit_batches * args.batch_size], y[: args.limit_batches * args.batch_size]
    steps = math.ceil(len(x) / args.batch_size)  # optimizer steps per epoch: lab-cnn's x-axis
    model = build_model(activation=args.activation, conv_layers=args.conv_layers)
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.SGD(learning_rate=KERAS_LR, momentum=KERAS_MOMENTUM),
        metrics=["accuracy"],
    )
    board = keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=1, write_graph=True)
    log = scalar_logger(log_dir)
    same_names = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: log(0, {"model/params": model.count_params()}),
        on_epoch_begin=lambda epoch, logs: log(epoch * steps, {"lr-SGD": float(model.optimizer.learning_rate)}),
        on_epoch_end=lambda epoch, logs: log(
            (epoch + 1) * steps, {"train/loss": logs["loss"], "train/acc": logs["accuracy"]}
        ),
    )
    model.fit(
        x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, callbacks=[board, same_names], verbose=2
    )
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(model_path)
    print(f"Saved the model to {model_path}; TensorBoard logs in {log_dir}")


def test(args) -> None:
    from keras_parity.keras_model import hp, tf

    model = load(checked_model_path(args.model_path, writing=False))
    log_dir = run_dir(args)
    x, y = keras_arrays(args.data_dir, train=False)
    try:  # compiled here with the lab's loss and metric, whatever (or whether) it was compiled with
        model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
        loss, accuracy = model.evaluate(x, y, batch_size=args.batch_size, verbose=0)
        settings = hyperparameters(model)
    except (ValueError, TypeError, UserError) as e:
        raise UserError(
            f"--model_path: {args.model_path} is not the lab's network for MNIST ({first_line(e)})"
        ) from None
    step = trained_steps(log_dir)
    scalar_logger(log_dir)(
        step,
        {"test/loss": loss, "test/acc": accuracy, "test/images": len(x), "hp/test_loss": loss, "hp/test_acc": accuracy},
    )
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hp.hparams(settings)
    print(f"Test loss: {loss}")
    print(f"Test accuracy: {100 * accuracy:.2f}%")


def trained_steps(log_dir: Path) -> int:
    """The optimizer steps the run's training took (the step of its last ``train/loss``), or 0 for a
    model trained elsewhere."""
    if not log_dir.is_dir():
        return 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    return (
        max((e.step for e in events.Tensors("train/loss")), default=0)
        if "train/loss" in events.Tags()["tensors"]
        else 0
    )


def summary(args) -> None:
    from keras_parity.keras_model import build_model

    build_model(activation=args.activation, conv_layers=args.conv_layers).summary()


def main(argv: list[str] | None = None) -> None:
    def command() -> None:
        args = parser().parse_args(sys.argv[1:] if argv is None else argv)
        {"train": train, "test": test, "summary": summary}[args.mode](args)

    exit_on_user_error("keras-parity", command)
