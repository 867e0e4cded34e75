"""TensorFlow and Keras imported, and not started: what the server of a study's workers
(lab_cnn.studies.workers) imports first, once, so that each Keras run forked from it starts warm.

Importing starts no thread pool and no device (keras_parity.keras_model does, when a run imports it), so
forking after it is safe. TensorBoard's summaries are bound to TensorFlow here, before lab_cnn's imports ask
TensorBoard for its stub (lab_cnn.compat.tensorboard_without_tensorflow, which saves a lab-cnn process the
import of TensorFlow that this server makes anyway): TensorBoard binds once per process, and the Keras runs
log through TensorFlow's summaries. TensorFlow's C++ start-up log, written while it loads, is silenced as
keras_model silences it."""

import os

saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 2)
try:
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
    from tensorboard.compat import tf2

    tf2.summary  # noqa: B018 - binds TensorBoard's compat API (and tensorboard.compat.tf beneath it) to TensorFlow
finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)
