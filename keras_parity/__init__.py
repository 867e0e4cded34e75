"""keras_parity: the lab's Keras network in Keras 3, an exact PyTorch port, and ``to_torch`` between them.

``build_model`` imports Keras (and TensorFlow) on first use only.
"""

from typing import Any

from keras_parity.torch_port import KerasCNN, KerasNet, to_torch

__all__ = ["KerasCNN", "KerasNet", "build_model", "to_torch"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from keras_parity.keras_model import build_model

        return build_model
    raise AttributeError(f"module 'keras_parity' has no attribute {name!r}")
