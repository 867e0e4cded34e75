"""TensorFlow and Keras imported, and not started: what the server of a study's workers
(lab_cnn.studies.workers) imports first, once, so that each Keras run forked from it starts warm, and what
keras_parity.keras_model imports them through.

Importing starts no thread pool and no device (keras_parity.keras_model does, when a run imports it), so
forking after it is safe. TensorFlow's C++ start-up log, written while it loads, is silenced; a notice it logs
while training is filtered out where it is logged (native_stderr_without)."""

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# TensorFlow 2.21, with op determinism on (keras-parity's trainings), logs this once per Keras fit and evaluate
# as it rewrites tf.data's parallel map as a sequential one: an ERROR line ("NodeDef mentions attribute
# use_unbounded_threadpool which is not in the op definition ... Unknown attributes will be ignored") that
# says nothing about the run and that no log level setting after TensorFlow's import turns off.
DETERMINISTIC_MAP_NOTICE = b"NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition"


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Nothing written to the process's stderr by native code (Python exceptions still show, afterwards)."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextmanager
def native_stderr_without(*notices: bytes) -> Iterator[None]:
    """The process's stderr less the lines that hold one of ``notices``: file descriptor 2 goes to a pipe,
    which a thread reads line by line and copies on to the stderr that was, until the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def copy_on() -> None:
        with os.fdopen(read, "rb") as lines, open(saved, "wb", closefd=False) as stderr:
            for line in lines:
                if not any(notice in line for notice in notices):
                    stderr.write(line)
                    stderr.flush()

    copier = threading.Thread(target=copy_on, name="stderr-filter", daemon=True)
    copier.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer gone: the thread copies what is left, then ends
        copier.join()
        os.close(saved)


# TensorFlow's C++ start-up log (how it was built) ignores TF_CPP_MIN_LOG_LEVEL since TensorFlow 2.20: it
# is written while TensorFlow loads, so that is when it is silenced.
with native_stderr_silenced():
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
