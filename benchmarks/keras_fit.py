"""The lab's Keras net trained by Keras on TensorFlow with the lab's settings (case d):
pixels /255, one-hot labels, SGD(0.01), batch 128, no shuffling, ``model.fit`` then ``evaluate``."""

from __future__ import annotations

import argparse

from benchmarks.timing import clock, write_result
from keras_parity.cli import keras_arrays
from keras_parity.keras_model import build_model, keras


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--result", required=True, help="JSON file to write")
    args = p.parse_args()
    keras.utils.set_random_seed(1)  # the lab sets no seed; op determinism stays off, as in the lab
    x, y = keras_arrays(args.data_dir, train=True)
    model = build_model()
    model.compile(
        loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(learning_rate=0.01), metrics=["accuracy"]
    )
    start = clock()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0)
    loop_s = clock() - start
    _, accuracy = model.evaluate(*keras_arrays(args.data_dir, train=False), batch_size=args.batch_size, verbose=0)
    write_result(args.result, loop_s=loop_s, images=args.epochs * len(x), test_acc=float(accuracy))


if __name__ == "__main__":
    main()
