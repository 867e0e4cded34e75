"""Keras (TensorFlow) and PyTorch in one process, and TensorBoard without TensorFlow.

TensorFlow 2.20+ loads its library with RTLD_GLOBAL, so a triton imported after it (torch imports
triton lazily, through Lightning, torchvision or torch.compile) binds to TensorFlow's LLVM and the
process dies with a segmentation fault (TensorFlow issue 124205). Loading triton's own library with
RTLD_DEEPBIND first makes it use its own symbols; the import of triton then finds it loaded.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.util
import os
import sys
import types


class TritonAfterTensorFlow(importlib.abc.MetaPathFinder):
    """Before triton is imported in a process that has TensorFlow, loads triton's library deep-bound.
    Finds nothing itself: the import goes on as usual."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "triton" and "tensorflow" in sys.modules:
            sys.meta_path.remove(self)  # once, and not while looking triton up below
            spec = importlib.util.find_spec("triton")
            library = os.path.join(os.path.dirname(spec.origin), "_C", "libtriton.so") if spec and spec.origin else ""
            if os.path.isfile(library):
                ctypes.CDLL(library, mode=os.RTLD_NOW | os.RTLD_DEEPBIND)
        return None


def allow_tensorflow_beside_torch() -> None:
    """Install the finder (once per process), unless triton is loaded already (then nothing can crash)."""
    if "triton" not in sys.modules and not any(isinstance(f, TritonAfterTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, TritonAfterTensorFlow())


def tensorboard_without_tensorflow() -> None:
    """TensorBoard's writer and reader import TensorFlow whenever it is installed (it is, for
    keras_parity), which costs a run seconds and hundreds of MB for nothing. The ``tensorboard.compat.notf``
    marker module (TensorBoard's "no_tensorflow" build option) makes them use their own stub.

    That choice is made once per process (tensorboard.compat's lazy ``tf``), and TensorBoard's summary
    ops, which TensorFlow's own ``tf.summary`` are, then fail with "cannot import tensorflow 2.0 API":
    their ``tf2`` is whatever ``tf.compat.v2`` the bound ``tf`` has, and the stub has none (the same
    failure in Guild AI: https://github.com/guildai/guildai/issues/517). So the stub's ``compat`` is given
    a ``v2`` that is TensorFlow's own, imported only when TensorFlow's summaries ask for it: a Keras
    TensorBoard callback or keras-parity still logs in a session that ran lab-cnn first."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.compat.tensorflow_stub import compat as stub_compat

    if not hasattr(stub_compat, "__getattr__"):
        stub_compat.__getattr__ = _tensorflow_v2_api  # type: ignore[attr-defined]  # PEP 562: attributes it lacks


def _tensorflow_v2_api(name: str) -> types.ModuleType:
    if name == "v2" and importlib.util.find_spec("tensorflow") is not None:
        return importlib.import_module("tensorflow").compat.v2
    raise AttributeError(f"module 'tensorboard.compat.tensorflow_stub.compat' has no attribute {name!r}")
