"""``keras-parity`` (also ``python -m keras_parity``): the lab's ``mnist_cnn_keras.py`` interface.

    keras-parity --mode train --batch-size 128 --epochs 5 --model_path models/mnist_cnn.keras
    keras-parity --mode test --model_path models/mnist_cnn.keras
    keras-parity --mode summary [--activation tanh] [--conv-layers 1]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from keras_parity.torch_port import ACTIVATIONS
from lab_cnn import KERAS_LOG_DIR
from lab_cnn.data import MNISTDataModule
from lab_cnn.mnist import load_split
from lab_cnn.errors import ArgumentParser, UserError, exit_on_user_error, whole_number


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="keras-parity", description="Train, test or summarize the lab's Keras CNN on MNIST.")
    p.add_argument("--mode", choices=["train", "test", "summary"], required=True, help="what to do")
    p.add_argument("--batch-size", type=whole_number, default=128, help="images per batch (default 128)")
    p.add_argument("--epochs", type=whole_number, default=5, help="training epochs (default 5)")
    p.add_argument("--model_path", "--model-path", default="models/mnist_cnn.keras", help="the .keras file to write or read")
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="relu", help="Conv2D/Dense activation (default relu)")
    p.add_argument("--conv-layers", type=whole_number, default=2, help="number of conv blocks (default 2)")
    p.add_argument("--seed", type=int, default=1, help="seed of Python, NumPy and TensorFlow (default 1)")
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (default data; fetched if missing)")
    p.add_argument("--run", default=None, help=f"TensorBoard folder under {KERAS_LOG_DIR}/ (default: the model file's name)")
    p.add_argument("--limit-batches", type=whole_number, default=None, help="train on the first N batches only (quick checks)")
    return p


def keras_arrays(data_dir: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """The verified MNIST split as the Keras lab feeds it: pixels /255 as (N, 28, 28, 1), one-hot labels."""
    images, labels = load_split(data_dir, train)
    x = images.permute(0, 2, 3, 1).numpy().astype("float32") / 255
    return x, np.eye(10, dtype="float32")[labels.numpy()]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    import tensorflow as tf

    from keras_parity.keras_model import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def load(model_path: str):
    """A saved model, loaded with ``safe_mode=True`` (no arbitrary code from the file)."""
    if not Path(model_path).is_file():
        raise UserError(f"--model_path: {model_path} does not exist; train first with --mode train")
    from keras_parity.keras_model import keras

    try:
        return keras.saving.load_model(model_path, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"--model_path: {model_path} is not a readable Keras model ({str(e).splitlines()[0]})") from None


def run_dir(args) -> Path:
    """The run's TensorBoard folder: ``lightning_logs/keras/<run>/``."""
    return KERAS_LOG_DIR / (args.run or Path(args.model_path).stem)


def scalar_logger(log_dir: Path):
    """``log(step, values)``: scalars under lab-cnn's names (train/loss, test/acc, ...) in ``log_dir``,
    so one TensorBoard compares both frameworks."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))

    def log(step: int, values: dict[str, float]) -> None:
        with writer.as_default():
            for tag, value in values.items():
                tf.summary.scalar(tag, value, step=step)
        writer.flush()

    return log


def train(args) -> None:
    from keras_parity.keras_model import build_model, keras

    MNISTDataModule(data_dir=args.data_dir).prepare_data()  # fetched when missing, refused when wrong
    seed_everything(args.seed)
    x, y = keras_arrays(args.data_dir, train=True)
    if args.limit_batches:
        x, y = x[: args.limit_batches * args.batch_size], y[: args.limit_batches * args.batch_size]
    model = build_model(activation=args.activation, conv_layers=args.conv_layers)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(learning_rate=0.01), metrics=["accuracy"])
    log_dir = run_dir(args)
    board = keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=1, write_graph=True)
    log = scalar_logger(log_dir)
    same_names = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: log(0, {"model/params": model.count_params()}),
        on_epoch_begin=lambda epoch, logs: log(epoch, {"lr-SGD": float(model.optimizer.learning_rate)}),
        on_epoch_end=lambda epoch, logs: log(epoch, {"train/loss": logs["loss"], "train/acc": logs["accuracy"]}),
    )
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, callbacks=[board, same_names], verbose=2)
    Path(args.model_path).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.model_path)
    print(f"Saved the model to {args.model_path}; TensorBoard logs in {log_dir}")


def test(args) -> None:
    model = load(args.model_path)
    x, y = keras_arrays(args.data_dir, train=False)
    loss, accuracy = model.evaluate(x, y, batch_size=args.batch_size, verbose=0)
    scalar_logger(run_dir(args))(0, {"test/loss": loss, "test/acc": accuracy})
    print(f"Test loss: {loss}")
    print(f"Test accuracy: {100 * accuracy:.2f}%")


def summary(args) -> None:
    from keras_parity.keras_model import build_model

    build_model(activation=args.activation, conv_layers=args.conv_layers).summary()


def main(argv: list[str] | None = None) -> None:
    def command() -> None:
        args = parser().parse_args(sys.argv[1:] if argv is None else argv)
        {"train": train, "test": test, "summary": summary}[args.mode](args)

    exit_on_user_error("keras-parity", command)
