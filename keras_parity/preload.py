"""TensorFlow and Keras imported, and not started: what the server of a study's workers
(lab_cnn.studies.workers) imports first, once, so that each Keras run forked from it starts warm.

Importing starts no thread pool and no device (keras_parity.keras_model does, when a run imports it), so
forking after it is safe. TensorFlow's C++ start-up log, written while it loads, is silenced as keras_model
silences it."""

import os

saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 2)
try:
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)
