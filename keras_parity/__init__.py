"""keras_parity: the lab's Keras network in Keras 3, an exact PyTorch port, and ``to_torch`` between them.

Everything is imported on first use: ``keras_parity.nets`` (the port as a plain ``nn.Module``) loads
with torch alone, ``KerasNet`` and ``to_torch`` with Lightning, ``build_model`` with Keras and TensorFlow.
"""

import os
from importlib import import_module
from typing import Any

import lab_cnn  # noqa: F401 - lets TensorFlow and torch share the process (lab_cnn.compat)
from lab_cnn.errors import console_command, exit_on_user_error

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__all__ = ["KerasCNN", "KerasNet", "build_model", "to_torch"]
WHERE = {
    "KerasCNN": "keras_parity.nets",
    "KerasNet": "keras_parity.module",
    "to_torch": "keras_parity.module",
    "build_model": "keras_parity.keras_model",
}


def main() -> None:
    """The ``keras-parity`` command (:func:`keras_parity.cli.main`), imported here, where Ctrl-C during its
    seconds of imports (torch's) is the one line it is later."""
    console_command(lambda: exit_on_user_error("keras-parity", lambda: import_module("keras_parity.cli").main()))


def __getattr__(name: str) -> Any:
    if name in WHERE:
        return getattr(import_module(WHERE[name]), name)
    raise AttributeError(f"module 'keras_parity' has no attribute {name!r}")
