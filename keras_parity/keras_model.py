"""The lab's Keras network (report part a) in Keras 3 on TensorFlow."""

from __future__ import annotations

from keras_parity.nets import ACTIVATIONS, CONV_DROPOUT, DENSE_DROPOUT, POOL_SIZE, keras_names
from keras_parity.preload import native_stderr_silenced  # TensorFlow and Keras, imported silenced
from lab_cnn.nets import IMAGE_SIZE, NUM_CLASSES, output_size
from lab_cnn.validators import choice, positive_int

# Looking for devices writes to stderr too (on a machine without a GPU, "failed call to cuInit"), so it is
# done here, silenced, once.
with native_stderr_silenced():
    import keras
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp  # noqa: F401 - TensorFlow's HParams summaries, for keras_parity.cli

    tf.config.list_physical_devices()
from keras import layers  # noqa: E402


def build_model(
    activation: str = "relu",
    conv_layers: int = 2,
    filters: int = 64,
    kernel_size: int = 3,
    dense_layers: int = 3,
    dense_units: int = 128,
) -> keras.Sequential:
    """The lab's ``Sequential``: Conv2D/BatchNorm/MaxPool/Dropout blocks, Flatten, Dense/BatchNorm/Dropout
    blocks, Dense softmax. Layer names are Keras' own (conv2d, conv2d_1, ...) whatever was built before."""
    choice("activation", activation, ACTIVATIONS)
    name = keras_names()
    model = keras.Sequential(name="mnist_cnn")
    model.add(keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)))
    size = IMAGE_SIZE
    for _ in range(positive_int("conv_layers", conv_layers)):
        conv = name("conv2d")
        size = output_size(conv, size, positive_int("kernel_size", kernel_size))
        model.add(layers.Conv2D(positive_int("filters", filters), kernel_size, activation=activation, name=conv))
        model.add(layers.BatchNormalization(name=name("batch_normalization")))
        pool = name("max_pooling2d")
        size = output_size(pool, size, POOL_SIZE, stride=POOL_SIZE)
        model.add(layers.MaxPooling2D(POOL_SIZE, name=pool))
        model.add(layers.Dropout(CONV_DROPOUT, name=name("dropout")))
    model.add(layers.Flatten(name=name("flatten")))
    for _ in range(positive_int("dense_layers", dense_layers)):
        model.add(layers.Dense(positive_int("dense_units", dense_units), activation=activation, name=name("dense")))
        model.add(layers.BatchNormalization(name=name("batch_normalization")))
        model.add(layers.Dropout(DENSE_DROPOUT, name=name("dropout")))
    model.add(layers.Dense(NUM_CLASSES, activation="softmax", name=name("dense")))
    return model
