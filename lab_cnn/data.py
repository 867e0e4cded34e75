"""MNIST as a LightningDataModule: the raw files are read once into tensors and batches are slices."""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lab_cnn import mnist
from lab_cnn.errors import UserError, positive_int
from lab_cnn.handwriting import load_digits

# The PyTorch lab's Normalize((0.1307,), (0.3081,)): mean and std of the training pixels in [0, 1].
MEAN, STD = 0.1307, 0.3081
TRAIN_SIZE = 60_000


def load_split(data_dir: str, train: bool) -> tuple[Tensor, Tensor]:
    """The verified raw images (uint8 [N,1,28,28]) and labels (int64 [N]) of one official split."""
    prefix = "train" if train else "t10k"
    root = mnist.raw_dir(data_dir)
    for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        if problem := mnist.checksum_problem(root / name):
            raise UserError(f"{problem}; run `lab-cnn data --data-dir {data_dir}` to fetch verified files")
    images = torch.from_numpy(mnist.read_idx(root / f"{prefix}-images-idx3-ubyte").copy()).unsqueeze(1)
    labels = torch.from_numpy(mnist.read_idx(root / f"{prefix}-labels-idx1-ubyte").astype("int64"))
    return images, labels


def normalize(images: Tensor, kind: Literal["standard", "unit"]) -> Tensor:
    """uint8 pixels to float32: ``unit`` is x/255 (the Keras lab), ``standard`` also subtracts MEAN, divides by STD."""
    x = images.float().div_(255)
    return x.sub_(MEAN).div_(STD) if kind == "standard" else x


class TensorBatches(Dataset):
    """Images and labels held in memory; a batch of indices is fetched with one slice (``__getitems__``)."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices, device=self.labels.device)
        return self.images[index], self.labels[index]

    def to(self, device: torch.device) -> TensorBatches:
        return TensorBatches(self.images.to(device), self.labels.to(device))


def as_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """collate_fn for :class:`TensorBatches`: ``__getitems__`` already returns the batch."""
    return batch


class EpochPermutation(Sampler[int]):
    """A new permutation every epoch, drawn from ``seed + epoch`` so a resumed run sees the same order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class MNISTDataModule(L.LightningDataModule):
    """MNIST from the four verified raw files, served from memory (on the GPU, when training there).

    Args:
        data_dir: folder holding ``MNIST/raw``; fetched there when missing.
        batch_size: images per batch.
        normalize: ``standard`` ((x/255 - 0.1307) / 0.3081, the PyTorch lab) or ``unit`` (x/255, the Keras lab).
        shuffle: a new permutation every epoch (the PyTorch lab) or file order (the Keras lab).
        val_size: 0 validates each epoch on the 10,000 test images (the lab's per-epoch test curve);
            N > 0 holds out N seeded training images instead.
        seed: seed of the shuffling and of the hold-out.
        predict_path: a folder or glob of your own digit images (PNG, JPEG) for ``predict``;
            default: the test images.
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        normalize: Literal["standard", "unit"] = "standard",
        shuffle: bool = True,
        val_size: int = 0,
        seed: int = 1,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        positive_int("data.batch_size", batch_size)
        if normalize not in ("standard", "unit"):
            raise UserError(f"data.normalize: {normalize!r} is not allowed; use 'standard' or 'unit'")
        if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < TRAIN_SIZE:
            raise UserError(f"data.val_size: {val_size!r} is not allowed; use a whole number in [0, {TRAIN_SIZE})")
        self.save_hyperparameters()
        self.data_dir, self.batch_size, self.normalize = data_dir, batch_size, normalize
        self.shuffle, self.val_size, self.seed, self.predict_path = shuffle, val_size, seed, predict_path
        self.train_set: TensorBatches | None = None
        self.verified = False

    def prepare_data(self) -> None:
        """Fetch the raw files when they are missing; a file that is present but wrong is an error."""
        if self.verified:
            return
        found = mnist.problems(self.data_dir)
        if any(not p.endswith(": missing") for p in found):
            raise UserError(f"{found[0]}; run `lab-cnn data --data-dir {self.data_dir}` to fetch verified files")
        if found:
            mnist.fetch(self.data_dir)
        self.verified = True

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_x, train_y = load_split(self.data_dir, train=True)
        test_x, test_y = load_split(self.data_dir, train=False)
        train = TensorBatches(normalize(train_x, self.normalize), train_y)
        self.test_set = TensorBatches(normalize(test_x, self.normalize), test_y)
        if self.val_size:
            order = torch.randperm(TRAIN_SIZE, generator=torch.Generator().manual_seed(self.seed))
            held, kept = order[: self.val_size], order[self.val_size :]
            train, self.val_set = TensorBatches(*train[kept]), TensorBatches(*train[held])
        else:
            self.val_set = self.test_set
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        if device.type == "cuda":  # the whole dataset moves to the GPU once; batches are sliced there
            train, self.test_set = train.to(device), self.test_set.to(device)
            self.val_set = self.test_set if not self.val_size else self.val_set.to(device)
        self.train_set = train

    def _loader(self, data: Dataset, sampler: Sampler | None = None) -> DataLoader:
        # A private generator: starting an epoch's iterator must not draw from the global RNG
        # (dropout's), or a resumed run would draw its dropout masks at another offset.
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, collate_fn=as_batch, generator=torch.Generator())

    def train_dataloader(self) -> DataLoader:
        sampler = EpochPermutation(len(self.train_set), self.seed) if self.shuffle else None
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        if self.predict_path is None:
            return self._loader(self.test_set)
        images, self.predict_files = load_digits(self.predict_path)
        unknown = torch.full((len(images),), -1, dtype=torch.int64)
        return self._loader(TensorBatches(normalize(images, self.normalize), unknown))

    def predict_names(self) -> tuple[list[str], list[int | str]]:
        """Name and true label (empty when unknown) of each image ``predict`` sees, in order."""
        if self.predict_path is None:
            return [f"t10k[{i}]" for i in range(len(self.test_set))], self.test_set.labels.tolist()
        return self.predict_files, [""] * len(self.predict_files)
