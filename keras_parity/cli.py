"""``keras-parity`` (also ``python -m keras_parity``): the lab's ``mnist_cnn_keras.py`` interface.

    keras-parity --mode train --batch-size 128 --epochs 5 --model_path models/mnist_cnn.keras
    keras-parity --mode test --model_path models/mnist_cnn.keras
    keras-parity --mode summary [--activation tanh] [--conv-layers 1]

It imports Keras and TensorFlow, not Lightning. Every argument is checked before training.

Each training gets a run folder of its own, ``lightning_logs/keras/<run>/version_N/`` (``--run``, by
default the model file's name; ``--run <name>/version_N`` takes that version folder, which must not
exist yet). It refuses to replace an existing ``--model_path`` unless given ``--overwrite``, and writes
``<model>.keras.run.json`` beside the model: the run folder, the last optimizer step and the model
file's SHA-256. ``--mode test`` of that file logs into that run folder at that step, beside the training
curves; a model file keras-parity did not train (no record, or one about another file or a run folder
that is gone) is tested all the same and logged into a new version folder of ``--run`` at step 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from keras_parity.nets import ACTIVATIONS, KERAS_LR, KERAS_MOMENTUM, keras_settings
from lab_cnn import mnist
from lab_cnn.errors import ArgumentParser, UserError, exit_on_user_error, first_line
from lab_cnn.mnist import TRAIN_SIZE
from lab_cnn.nets import NUM_CLASSES
from lab_cnn.runs import KERAS_LOG_DIR, check_can_write, checked_run_name, claim_version
from lab_cnn.validators import MAX_SEED, batch_size, number_text, seed, whole_number


def seed_number(text: str) -> int:
    """argparse type: a seed, by :func:`lab_cnn.validators.seed`'s rule."""
    return number_text(text, seed, f"use a whole number in [0, {MAX_SEED}]")


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="keras-parity", description="Train, test or summarize the lab's Keras CNN on MNIST.")
    p.add_argument("--mode", choices=["train", "test", "summary"], required=True, help="what to do")
    p.add_argument("--batch-size", type=batch_size_text, default=128, help="images per batch (default 128)")
    p.add_argument("--epochs", type=whole_number, default=5, help="training epochs (default 5)")
    p.add_argument(
        "--model_path",
        "--model-path",
        default="models/mnist_cnn.keras",
        help="the .keras file to write or read (a training writes its run's record beside it, <file>.run.json)",
    )
    p.add_argument("--overwrite", action="store_true", help="train even if --model_path exists, replacing it")
    p.add_argument(
        "--activation", choices=list(ACTIVATIONS), default="relu", help="Conv2D/Dense activation (default relu)"
    )
    p.add_argument("--conv-layers", type=whole_number, default=2, help="number of conv blocks (default 2)")
    p.add_argument(
        "--seed", type=seed_number, default=1, help=f"seed of Python, NumPy and TensorFlow, 0..{MAX_SEED} (default 1)"
    )
    p.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (default data; fetched if missing)")
    p.add_argument(
        "--run",
        default=None,
        help=f"run name: each training logs to a new {KERAS_LOG_DIR}/<run>/version_N/ (default: the model file's "
        "name; <run>/version_N names a new one); test logs to the run that trained the model, at its last step, "
        "or to a new version at step 0 for a model keras-parity did not train",
    )
    p.add_argument(
        "--limit-batches", type=whole_number, default=None, help="train on the first N batches only (quick checks)"
    )
    return p


def keras_arrays(data_dir: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """The verified MNIST split as the Keras lab feeds it: pixels /255 as (N, 28, 28, 1), one-hot labels."""
    images, labels = mnist.read_split(data_dir, train)
    return images[..., None].astype("float32") / 255, np.eye(NUM_CLASSES, dtype="float32")[labels]


def keras_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """``x`` and ``y`` in batches of ``batch_size``, in order: the batches ``model.fit(x, y, batch_size,
    shuffle=False)`` makes of the arrays, as a ``tf.data.Dataset`` with tf.data's autotuning off.

    Why not the arrays: Keras makes them an autotuned tf.data pipeline, and its autotuner's thread sleeps
    between optimizations for a period that doubles up to 60 s (``kOptimizationPeriodMaxMs``,
    tensorflow/core/framework/model.h). Seen here (TensorFlow 2.21, gdb on the process): when fit ends,
    the iterator's destructor waits for that thread to wake, 30 to 43 s after the last batch of a 1-epoch
    run at 1 thread, on two runs going at once. There is nothing to tune here (a pipeline of slices of
    arrays in memory), so the batches and the numbers are the same; only the wait is gone. With op
    determinism on, Keras' pipeline also logs an ERROR line that says nothing about the run, as TensorFlow
    rewrites its parallel map as a sequential one; this one has no map."""
    from keras_parity.keras_model import tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).with_options(options)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's ops deterministic."""
    from keras_parity.keras_model import keras, tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def batch_size_text(text: str) -> int:
    """argparse type: a batch size, by :func:`lab_cnn.validators.batch_size`'s rule."""
    return number_text(text, batch_size, f"use a whole number in [1, {TRAIN_SIZE}]")


def checked_model_path(path: str, writing: bool, overwrite: bool = False) -> Path:
    """``--model_path``: a ``.keras`` file; to write it, a folder that exists or can be made, and can be
    written, and no file there unless ``overwrite``."""
    model_path = Path(path)
    if model_path.suffix != ".keras":
        raise UserError(
            f"--model_path: {path!r} is not allowed; Keras 3 saves models as .keras files, e.g. models/mnist_cnn.keras"
        )
    if writing:
        if model_path.is_dir():
            raise UserError(f"--model_path: {path} is a folder; give a .keras file name")
        if model_path.exists() and not model_path.is_file():
            raise UserError(f"--model_path: {path} is not a regular file; give a .keras file name")
        if model_path.exists() and not overwrite:
            raise UserError(f"--model_path: {path} exists; give another file name, or --overwrite to replace it")
        check_can_write("--model_path", model_path.parent)
    elif not model_path.exists():
        raise UserError(f"--model_path: {path} does not exist; train first with --mode train")
    elif not model_path.is_file():
        raise UserError(f"--model_path: {path} is not a regular file; give a .keras file")
    return model_path


def load(model_path: Path, key: str = "--model_path"):
    """A saved model, loaded with ``safe_mode=True`` (no arbitrary code from the file); messages name ``key``."""
    if not zipfile.is_zipfile(model_path):  # Keras' own error would say "File not found" of a file that is there
        raise UserError(f"{key}: {model_path} is not a .keras model (the zip archive Keras' model.save writes)")
    from keras_parity.keras_model import keras

    try:
        return keras.saving.load_model(model_path, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        problem = archive_problem(model_path) or load_problem(e)
        raise UserError(f"{key}: {model_path} is not a readable Keras model ({problem})") from None


WEIGHTS = "model.weights.h5"  # where Keras' model.save writes the weights, and load_model reads them


def archive_problem(model_path: Path) -> str | None:
    """Which file inside a ``.keras`` archive Keras could not read, and why: its errors say only why (h5py's
    "truncated file", json's "Expecting value"). Model.save writes ``config.json`` (the layers, a JSON object) and
    the weights, ``model.weights.h5``. None where these are whole, and Keras' own words say the rest."""
    import h5py

    try:
        with zipfile.ZipFile(model_path) as archive:
            if (damaged := archive.testzip()) is not None:  # reads every file: a deflated one may fail to inflate
                return f"its {damaged} is damaged: its checksum in the archive does not match"
            names = archive.namelist()
            config = archive.read("config.json") if "config.json" in names else None
            weights = archive.read(WEIGHTS) if WEIGHTS in names else None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:  # OSError: a seek before its start
        return f"the archive is damaged or cut short: {first_line(e)}"
    except (RuntimeError, NotImplementedError) as e:  # encrypted, or compressed in a way zipfile does not read
        return f"the archive cannot be read: {first_line(e)}"
    if config is None:
        return "it holds no config.json, the layers Keras' model.save writes"
    try:
        layers = json.loads(config)  # as Keras reads it: UTF-8, 16 or 32
    except RecursionError:
        return "its config.json nests too deep to be read"
    except ValueError as e:  # not text, or not JSON
        return f"its config.json is not JSON: {first_line(e)}"
    if not isinstance(layers, dict) or "class_name" not in layers:
        return "its config.json is not a model's config: Keras writes a JSON object with the model's class_name there"
    if weights is not None:
        try:
            with h5py.File(io.BytesIO(weights), "r"):
                pass
        except OSError as e:
            return f"its {WEIGHTS} is not a readable HDF5 file: {first_line(e)}"
    return None


# How Keras says, in some error of the chain it raises, that it lacks a class or function a model file names
UNKNOWN_PARTS = (
    r"Could not locate (?P<kind>class|function) '(?P<name>[^']+)'",
    r"Cannot deserialize object of type `(?P<name>[^`]+)`",  # an initializer, a regularizer
    r"Could not interpret (?:\w+ )+identifier: \{.*?'class_name': '(?P<name>[^']+)'",  # ... in a layer's config
    r"Could not deserialize (?P<kind>class) '(?P<name>[^']+)' because its parent module (?P<module>\S+) cannot be",
)


NOT_KERAS_OWN = (
    "a custom one, defined in the code that made the model, or one of a newer Keras; keras-parity loads models of "
    "Keras' own parts"
)


def load_problem(error: BaseException) -> str:
    """Why Keras could not load a model, in one line. Keras wraps the reason in errors of each object holding
    it ("<class 'Sequential'> could not be deserialized properly"), so the errors it chained say it: a class or
    function it does not know (a custom layer, registered in the code that made the model) is named, what safe
    mode refuses (a lambda's code) is said without Keras' advice of how to load it unsafely, and a message that
    goes on after a colon (weights of another shape) keeps its next line."""
    from keras_parity.keras_model import keras

    chain, seen = [error], {id(error)}
    while (inner := chain[-1].__cause__ or chain[-1].__context__) is not None and id(inner) not in seen:
        chain, seen = [*chain, inner], seen | {id(inner)}
    for reason in chain:
        for pattern in UNKNOWN_PARTS:
            if (unknown := re.match(pattern, str(reason))) and not keras_has(unknown["name"]):
                part = unknown.groupdict()
                kind, module = part.get("kind") or "class", part.get("module")
                name = f"{kind} {part['name']!r}" + (f" of the module {module}" if module else "")
                return f"it uses the {name}, which Keras {keras.__version__} does not have: {NOT_KERAS_OWN}"
        if "safe_mode=False" in str(reason):
            return f"Keras' safe mode, which keras-parity loads in, refuses it: {first_line(reason).partition('. ')[0]}"
    reason = chain[-1] if "could not be deserialized properly" in str(error) else error
    lines = [" ".join(line.split()) for line in str(reason).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "... for object <Conv2D name=conv2d>:", then why
        why = f"{lines[0]} {lines[1].partition(' Target variable:')[0]}"  # not the variable's values
        return f"its {WEIGHTS} does not fit the layers of its config.json: {why}" if "not be loaded" in why else why
    if unknown := re.match(UNKNOWN_PARTS[0], lines[0] if lines else ""):  # Keras' own class, given a config it refuses
        return f"its config.json gives the {unknown['kind']} {unknown['name']!r} a config Keras cannot build it from"
    return first_line(reason)


def keras_has(name: str) -> bool:
    """Whether Keras has a class or function of this name among the parts of a model (``Sequential``, ``Conv2D``,
    ``GlorotUniform``, ``relu``): it says "Could not locate class 'Sequential'" of one whose config it refuses."""
    from keras_parity.keras_model import keras

    modules = (keras.models, keras.layers, keras.initializers, keras.regularizers, keras.constraints, keras.activations)
    return any(hasattr(module, name) for module in modules)


def structure(model: Any, side: str) -> Any:
    """A model's ``input`` or ``output`` as it nests them (a dict of named ones, a list), or None for a
    Sequential model, whose one input and output Keras gives only once it has been called."""
    try:
        return getattr(model, side)
    except AttributeError:  # "The layer sequential has never been called and thus has no defined input"
        return None


def check_takes_mnist(model: Any, images: np.ndarray) -> None:
    """Refuse a model that cannot be tested as the lab's classifier is, saying why: the lab feeds one batch
    of (28, 28, 1) float pixels and scores one output of 10 class probabilities per image with categorical
    cross-entropy. Keras would test some such models all the same (a linear or sigmoid output scored as if
    it were probabilities, a dict input fed the images anyway), or refuse others in words that say nothing
    ("Exception encountered when calling Conv2D.call()" of int32 inputs)."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:  # a Sequential model saved before it was built
        raise UserError("it was saved before it was built: it has no inputs and no weights") from None
    if isinstance(named := structure(model, "input"), dict):
        raise UserError(f"it takes a dict of inputs ({', '.join(named)}); the lab's network takes one batch of images")
    if len(inputs) != 1:
        raise UserError(f"it takes {len(inputs)} inputs; the lab's network takes one batch of images")
    shape, dtype = tuple(inputs[0].shape[1:]), str(inputs[0].dtype)
    if len(shape) != images.ndim - 1 or any(side not in (None, want) for side, want in zip(shape, images.shape[1:])):
        raise UserError(f"it takes inputs of shape {shape}, not MNIST's {images.shape[1:]}")
    if not dtype.startswith(("float", "bfloat")):
        raise UserError(f"it takes {dtype} inputs, not the float pixels in [0, 1] the lab feeds it")
    if isinstance(named := structure(model, "output"), dict):
        raise UserError(f"it gives a dict of outputs ({', '.join(named)}); the lab's network gives one")
    if len(outputs) != 1:
        raise UserError(f"it gives {len(outputs)} outputs; the lab's network gives one")
    if tuple(outputs[0].shape[1:]) != (NUM_CLASSES,):
        raise UserError(f"it gives outputs of shape {tuple(outputs[0].shape[1:])}, not {NUM_CLASSES} class scores")
    scores = np.asarray(model.predict_on_batch(images[:8]), dtype="float64")
    # a softmax in float16 or bfloat16 sums to 1 within 0.003 (10,000 of them, TensorFlow 2.21)
    if (scores < 0).any() or not np.allclose(scores.sum(axis=1), 1, atol=0.01):
        raise UserError(
            f"its outputs are not probabilities: an image's {NUM_CLASSES} sum to {scores.sum(axis=1)[0]:.3g} and the "
            f"least is {scores.min():.3g}; the lab's loss, categorical cross-entropy, takes a softmax output"
        )


def is_version(name: str) -> bool:
    """A ``version_N`` folder's name, as :func:`lab_cnn.runs.run_versions` reads them."""
    return name.startswith("version_") and name.removeprefix("version_").isdigit()


def run_folder(args) -> Path:
    """``lightning_logs/keras/<run>/``, checked that it can be written: the folder of the run's versions,
    or for ``<name>/version_N`` that version folder, which must not exist yet."""
    name = checked_run_name("--run", args.run or Path(args.model_path).stem, reserved=())
    if any(is_version(part) for part in name.split("/")[:-1]):
        raise UserError(f"--run: {name!r} is not allowed; it is inside a run's version folder")
    folder = KERAS_LOG_DIR / name
    if is_version(folder.name) and (folder.exists() or folder.is_symlink()):
        run = folder.parent.relative_to(KERAS_LOG_DIR).as_posix()
        raise UserError(f"--run: {folder} is another run's folder; give {run} for a new version of that run")
    check_can_write("--run", folder)
    return folder


def claim_run_dir(folder: Path) -> Path:
    """A folder of this run's own in :func:`run_folder`'s ``folder``: the next ``version_N``, or ``folder``
    itself when it names one, each made with an atomic mkdir."""
    if not is_version(folder.name):
        return folder / f"version_{claim_version(folder)}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:  # made since run_folder's check
        raise UserError(f"--run: {folder} is another run's folder") from None
    return folder


def record_path(model_path: Path) -> Path:
    """The record of the training that wrote ``model_path``, beside it."""
    return model_path.with_name(model_path.name + ".run.json")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(model: Any, model_path: Path, log_dir: Path, step: int) -> None:
    """The model, and beside it its record (the run folder, relative to the model's folder so that both
    may move together, the last step and the file's SHA-256); each written to a temporary file and renamed
    into place, so that a kill while saving leaves an earlier model and record whole."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = model_path.with_name(f".{model_path.stem}.{os.getpid()}.keras")  # Keras saves to .keras names only
    record = record_path(model_path)
    temporary_record = record.with_name(f".{record.name}.{os.getpid()}")
    try:
        model.save(temporary)
        run = {"run": log_dir.relative_to(KERAS_LOG_DIR).as_posix(), "step": step, "sha256": sha256(temporary)}
        run["run_dir"] = os.path.relpath(log_dir, model_path.parent)
        temporary_record.write_text(json.dumps(run, indent=1) + "\n")
        temporary.replace(model_path)
        temporary_record.replace(record)  # a kill just before leaves the old record, about another file
    finally:
        temporary.unlink(missing_ok=True)
        temporary_record.unlink(missing_ok=True)


def trained_run(model_path: Path) -> tuple[str, Path, int] | None:
    """The run name, folder and last step of the keras-parity training that wrote ``model_path``, from
    its record; None for a model it did not train, saying so on stderr when a record is there but is
    about another file (the lab script saved over it, say) or its run folder is gone."""
    record = record_path(model_path)
    if not record.is_file():
        return None
    try:
        run = json.loads(record.read_text())
        name, folder, step = str(run["run"]), model_path.parent / run["run_dir"], int(run["step"])
        why = "it is about another file" if run["sha256"] != sha256(model_path) else None
    except (OSError, ValueError, KeyError, TypeError) as e:
        why = f"it cannot be read ({first_line(e)})"
    if why is None and not folder.is_dir():
        why = f"its run folder {os.path.normpath(folder)} is gone"
    if why:
        print(f"keras-parity: {record} not used, {why}: testing as a model trained elsewhere", file=sys.stderr)
        return None
    return name, Path(os.path.normpath(folder)), step


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
    model_path = checked_model_path(args.model_path, writing=True, overwrite=args.overwrite)
    folder = run_folder(args)
    mnist.ensure(args.data_dir)  # fetched when missing, refused when wrong
    from keras_parity.keras_model import build_model, keras

    if model_path.exists():
        print(f"keras-parity: --overwrite: this training replaces {model_path}", file=sys.stderr)
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
    log_dir = claim_run_dir(folder)
    board = keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=1, write_graph=True)
    log = scalar_logger(log_dir)
    same_names = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: log(0, {"model/params": model.count_params()}),
        on_epoch_begin=lambda epoch, logs: log(epoch * steps, {"lr-SGD": float(model.optimizer.learning_rate)}),
        on_epoch_end=lambda epoch, logs: log(
            (epoch + 1) * steps, {"train/loss": logs["loss"], "train/acc": logs["accuracy"]}
        ),
    )
    callbacks = [board, same_names]
    batches = keras_batches(x, y, args.batch_size)
    model.fit(batches, epochs=args.epochs, shuffle=False, callbacks=callbacks, verbose=2)
    save(model, model_path, log_dir, step=args.epochs * steps)
    print(f"Saved the model to {model_path}; TensorBoard logs in {log_dir}")


@contextlib.contextmanager
def console_held_until_accepted() -> Iterator[None]:
    """Python's warnings (Keras': "Skipping variable loading for optimizer", ...) and what native code writes
    to the process's stderr (TensorFlow's C++ log: "Not handling type DT_DOUBLE" of a float64 model, oneDNN's
    words on float16) held back while a model is loaded and checked, and shown when the block ends without a
    refusal: a model refused gets its one line alone."""
    sys.stderr.flush()
    console = os.dup(2)
    with tempfile.TemporaryFile() as native, warnings.catch_warnings(record=True) as held:
        os.dup2(native.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(console, 2)
            os.close(console)
        native.seek(0)
        written = native.read()
        while written:
            written = written[os.write(2, written) :]
    for warning in held:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno, warning.file)


def test(args) -> None:
    model_path = checked_model_path(args.model_path, writing=False)
    trained = trained_run(model_path)
    if trained is None:
        folder = run_folder(args)
    else:  # beside the training's curves, at its last step
        name, log_dir, step = trained
        if args.run not in (None, name, name.rpartition("/")[0]):
            raise UserError(f"--run: {model_path} was trained in {log_dir}, where its test is logged; leave out --run")
        check_can_write("--run", log_dir)
    with console_held_until_accepted():
        model = load(model_path)  # which imports TensorFlow after the checks that need none: a refusal is quick
        x, y = keras_arrays(args.data_dir, train=False)
        try:  # compiled here with the lab's loss and metric, whatever (or whether) it was compiled with
            check_takes_mnist(model, x)
            settings = hyperparameters(model)
            model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
            loss, accuracy = model.evaluate(keras_batches(x, y, args.batch_size), verbose=0)
        except (ValueError, TypeError, KeyError, UserError) as e:  # Keras' words for other inputs or outputs
            raise UserError(
                f"--model_path: {args.model_path} is not the lab's network for MNIST ({first_line(e)})"
            ) from None
    from keras_parity.keras_model import hp, tf

    if trained is None:
        log_dir, step = claim_run_dir(folder), 0
    scalar_logger(log_dir)(
        step,
        {"test/loss": loss, "test/acc": accuracy, "test/images": len(x), "hp/test_loss": loss, "hp/test_acc": accuracy},
    )
    with tf.summary.create_file_writer(str(log_dir)).as_default():
        hp.hparams(settings)
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
