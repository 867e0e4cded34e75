"""MNIST as a LightningDataModule: the raw files are read once into tensors and batches are slices."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lab_cnn import mnist, validators
from lab_cnn.errors import UserError
from lab_cnn.handwriting import Digit, load_digits
from lab_cnn.mnist import TEST_SIZE, TRAIN_SIZE, load_split, normalize


class TensorBatches(Dataset):
    """Images and labels held in memory; ``dataset[index_tensor]`` is a whole batch, fetched with one slice."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: Tensor | int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def to(self, device: torch.device) -> TensorBatches:
        return TensorBatches(self.images.to(device), self.labels.to(device))


def as_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """collate_fn for :class:`TensorBatches`: each item already is a batch."""
    return batch


def as_chunk(batch_size: int, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, int]:
    """collate_fn for training: consecutive batches served together, with the size of each batch."""
    return (*batch, batch_size)


class BatchOrder(DistributedSampler):
    """A DistributedSampler that yields the indices of each batch as one tensor on the data's device,
    so fetching a batch costs no per-image Python and no host-to-device copy. Shuffled, each epoch's
    permutation is drawn from ``seed + epoch`` (a resumed run sees the same order); with several
    processes each takes its share, as DistributedSampler does, so Lightning does not wrap it. For
    training the shares are padded to one length (every process takes as many steps); to evaluate
    (``each_once``) every image is in exactly one share, so 10,000 test images count 10,000 times."""

    def __init__(
        self,
        data: TensorBatches,
        batch_size: int,
        shuffle: bool,
        seed: int,
        num_replicas: int,
        rank: int,
        each_once: bool = False,
    ) -> None:
        super().__init__(data, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.batch_size, self.device, self.each_once = batch_size, data.labels.device, each_once
        share = range(rank, len(data), num_replicas)
        self.images = len(share) if each_once else self.num_samples  # of this process's share, served first

    def __iter__(self) -> Iterator[Tensor]:
        # A generator: the order is drawn at the first batch, after Lightning has called set_epoch
        # (on a resumed run it creates the iterator before that).
        if self.each_once:
            order = torch.arange(self.rank, len(self.dataset), self.num_replicas)  # type: ignore[arg-type]
        else:
            order = torch.tensor(list(super().__iter__())[: self.images], dtype=torch.int64)
        yield from order.to(self.device).split(self.batch_size)

    def __len__(self) -> int:
        return -(-self.images // self.batch_size)


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
        validators.batch_size("data.batch_size", batch_size)
        validators.seed("data.seed", seed)
        if normalize not in ("standard", "unit"):
            raise UserError(f"data.normalize: {normalize!r} is not allowed; use 'standard' or 'unit'")
        if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < TRAIN_SIZE:
            raise UserError(f"data.val_size: {val_size!r} is not allowed; use a whole number in [0, {TRAIN_SIZE})")
        self.save_hyperparameters()
        self.data_dir, self.batch_size, self.normalize = data_dir, batch_size, normalize
        self.shuffle, self.val_size, self.seed, self.predict_path = shuffle, val_size, seed, predict_path
        self.train_set: TensorBatches | None = None
        # Set for a fit by a callback that takes several optimizer steps per training step (the GPU fast
        # path, lab_cnn.fast): training batches are served in chunks of that many, and as Lightning's
        # limit_train_batches would count chunks, the data module counts the batches instead.
        self.steps_per_call = 1
        self.train_batches_limit: int | float | None = None
        self.verified = False
        self.predict_digits: list[Digit] | None = None

    def prepare_data(self) -> None:
        """Fetch the raw files when they are missing (a file present but wrong is an error), and read the
        images of ``predict_path`` (none readable is an error): mistakes show before a run folder is made."""
        if self.predict_path is not None and self.predict_digits is None:
            self.predict_digits = load_digits(self.predict_path)
        if not self.verified:
            mnist.ensure(self.data_dir)
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

    def _loader(self, data: TensorBatches, training: bool = False, steps: int = 1) -> DataLoader:
        """Batches of ``data``, shuffled as the data module says when ``training``; with ``steps`` K > 1, chunks
        of K consecutive batches (the fast path's training), ``train_batches_limit`` batches in all when it is
        set (a number, or a fraction of the epoch's)."""
        shuffle = training and self.shuffle
        # A private generator: starting an epoch's iterator must not draw from the global RNG
        # (dropout's), or a resumed run would draw its dropout masks at another offset.
        replicas, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        order = BatchOrder(data, self.batch_size * steps, shuffle, self.seed, replicas, rank, each_once=not training)
        if steps > 1 and self.train_batches_limit is not None:  # counted as Lightning counts them
            batches = counted_batches(
                "trainer.limit_train_batches", self.train_batches_limit, -(-order.num_samples // self.batch_size)
            )
            order.images = min(order.num_samples, self.batch_size * batches)
        collate: Callable[[Any], Any] = as_batch if steps == 1 else partial(as_chunk, self.batch_size)
        return DataLoader(data, batch_size=None, sampler=order, collate_fn=collate, generator=torch.Generator())

    def check_batch_limits(self, stage: str, limits: dict[str, tuple[str, int | float]], processes: int) -> None:
        """Every loader a ``stage`` (fit, validate, test, predict) uses keeps a batch under Lightning's limit of
        it (``limits``: split -> the option that sets it, and its value): at 0 Lightning would train or test nothing and
        end as if all went well, and at a fraction below one batch fail after the run's folder is made. A fit
        may skip its validation with ``limit_val_batches`` 0, as in Lightning."""
        images = {
            "train": TRAIN_SIZE - self.val_size,
            "val": self.val_size or TEST_SIZE,  # without a hold-out the test images validate
            "test": TEST_SIZE,
            "predict": len(self.predict_digits) if self.predict_digits is not None else TEST_SIZE,
        }
        splits = {"fit": ("train", "val", "test"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits[stage]:
            option, limit = limits[split]
            if not (stage == "fit" and split == "val" and limit == 0):
                share = -(-images[split] // processes)  # each process's (lab_cnn.data.BatchOrder)
                counted_batches(option, limit, -(-share // self.batch_size))

    def train_dataloader(self) -> DataLoader:
        """Batches; chunks of K batches when ``steps_per_call`` K > 1 (the fast path's)."""
        assert self.train_set is not None, "setup() comes first"
        return self._loader(self.train_set, training=True, steps=self.steps_per_call)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        if self.predict_path is None:
            return self._loader(self.test_set)
        assert self.predict_digits is not None, "prepare_data() reads them"
        images = torch.from_numpy(np.stack([d.pixels for d in self.predict_digits])).unsqueeze(1)
        unknown = torch.full((len(images),), -1, dtype=torch.int64)
        return self._loader(TensorBatches(normalize(images, self.normalize), unknown))

    def predict_names(self) -> tuple[list[str], list[int | str]]:
        """Name and true label (empty when unknown) of each image ``predict`` sees, in order."""
        if self.predict_path is None:
            return [f"t10k[{i}]" for i in range(len(self.test_set))], self.test_set.labels.tolist()
        assert self.predict_digits is not None, "prepare_data() reads them"
        return [d.name for d in self.predict_digits], [""] * len(self.predict_digits)


def counted_batches(option: str, limit: int | float, batches: int) -> int:
    """The batches of an epoch of ``batches`` that a limit (a number, or a fraction) lets through, counted as
    Lightning counts them; none is refused, naming the ``option`` that set it."""

    def counted(limit: int | float) -> int:
        return min(batches, limit) if isinstance(limit, int) else int(batches * limit)

    if counted(limit) < 1:
        step = 10.0 ** (math.floor(math.log10(1 / batches)) - 1)  # the smallest two-digit fraction that keeps one
        fraction = math.ceil(1 / batches / step) * step
        while counted(fraction) < 1:  # 1 / batches rounded up may still fall short in floating point
            fraction += step
        raise UserError(
            f"{option}: {limit!r} leaves no batch of the {batches} an epoch has; use a whole "
            f"number >= 1, or a fraction >= {fraction:.2g}"
        )
    return counted(limit)
