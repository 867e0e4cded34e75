"""TensorFlow and Keras imported, and not started: what the server of a study's workers
(lab_cnn.studies.workers) imports first, once, so that each Keras run forked from it starts warm, and what
keras_parity.keras_model imports them through.

Importing starts no thread pool and no device (keras_parity.keras_model does, when a run imports it), so
forking after it is safe. TensorFlow's C++ start-up log, written while it loads, is silenced."""

import os
from collections.abc import Iterator
from contextlib import contextmanager


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


# TensorFlow's C++ start-up log (how it was built) ignores TF_CPP_MIN_LOG_LEVEL since TensorFlow 2.20: it
# is written while TensorFlow loads, so that is when it is silenced.
with native_stderr_silenced():
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
