"""The lab's PyTorch net trained the framework-free way, as the lab's script does (cases b and c).

``--loader tensors``: a plain loop over MNIST already in memory as normalized tensors (b).
``--loader torchvision``: the lab's data path, torchvision's ``MNIST`` with per-sample
``ToTensor`` + ``Normalize`` in a ``DataLoader`` (c). Both test after every epoch, like the lab's script.
"""

from __future__ import annotations

import argparse
from itertools import islice
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.timing import clock, write_result
from lab_cnn.mnist import MEAN, STD, load_split, normalize
from lab_cnn.nets import LabCNN

TEST_BATCH = 1000  # the lab script's --test-batch-size


def tensor_batches(data_dir: str, train: bool, batch_size: int, device: torch.device):
    """Batches sliced from in-memory tensors, shuffled every epoch for training."""
    x, y = load_split(data_dir, train)
    x, y = normalize(x, "standard").to(device), y.to(device)

    def batches():
        order = torch.randperm(len(y), device=device) if train else torch.arange(len(y), device=device)
        for index in order.split(batch_size):
            yield x[index], y[index]

    return batches


def torchvision_batches(data_dir: str, train: bool, batch_size: int, device: torch.device):
    """The lab's loader: decoded and transformed one image at a time."""
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    dataset = datasets.MNIST(data_dir, train=train, download=False, transform=transform)
    extra: dict[str, Any] = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}  # the lab's
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=train, **extra)

    def batches():
        for x, y in loader:
            yield x.to(device), y.to(device)

    return batches


def test(net: torch.nn.Module, batches) -> tuple[float, float]:
    """Mean loss and accuracy over the test set."""
    net.eval()
    loss, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for x, y in batches():
            output: Tensor = net(x)
            loss += F.nll_loss(output, y, reduction="sum").item()
            correct += int((output.argmax(1) == y).sum())
            total += len(y)
    return loss / total, correct / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loader", choices=["tensors", "torchvision"], required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit-batches", type=int, default=None, help="train on the first N batches of each epoch only")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--threads", type=int, default=None, help="torch's CPU threads (default: torch's, one per core)")
    p.add_argument("--result", required=True, help="JSON file to write")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    device = torch.device(args.device)
    make = tensor_batches if args.loader == "tensors" else torchvision_batches
    train_batches = make(args.data_dir, True, args.batch_size, device)
    test_batches = make(args.data_dir, False, TEST_BATCH, device)
    net = LabCNN().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
    loop_s, images, accuracy = 0.0, 0, 0.0
    for _ in range(args.epochs):
        net.train()
        start = clock(device)
        for x, y in islice(train_batches(), args.limit_batches):
            optimizer.zero_grad()
            F.nll_loss(net(x), y).backward()
            optimizer.step()
            images += len(y)
        loop_s += clock(device) - start
        _, accuracy = test(net, test_batches)
    write_result(args.result, loop_s=loop_s, images=images, test_acc=accuracy)


if __name__ == "__main__":
    main()
