"""Your own digit images, prepared the way MNIST's were: ink light on dark, cropped to the digit,
scaled to fit 20x20 keeping its aspect, centred by centre of mass in 28x28."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from lab_cnn.errors import UserError
from lab_cnn.nets import IMAGE_SIZE

DIGIT_BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 image


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def mnist_style(image: Image.Image) -> np.ndarray:
    """A uint8 28x28 array of ``image`` (any size, dark on light or light on dark)."""
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    if _border(gray).mean() > 127:  # a light background: invert so the ink is bright, as in MNIST
        gray = 255 - gray
    gray = np.clip(gray - np.median(_border(gray)), 0, None)  # the background becomes 0
    if gray.max() <= 0:
        raise ValueError("no digit found (a blank image)")
    rows, cols = np.nonzero(gray > 0.1 * gray.max())
    crop = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = DIGIT_BOX / max(crop.shape)
    width, height = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
    small = np.asarray(Image.fromarray(crop / crop.max() * 255).convert("L").resize((width, height), Image.LANCZOS),
                       dtype=np.float32)
    ys, xs = np.indices(small.shape)
    centre_y, centre_x = (ys * small).sum() / small.sum(), (xs * small).sum() / small.sum()
    top = int(np.clip(round(IMAGE_SIZE / 2 - centre_y), 0, IMAGE_SIZE - height))
    left = int(np.clip(round(IMAGE_SIZE / 2 - centre_x), 0, IMAGE_SIZE - width))
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = small
    return canvas.clip(0, 255).round().astype(np.uint8)


def load_digits(path: str) -> tuple[Tensor, list[str]]:
    """uint8 [N,1,28,28] images and their file names, from a folder or a glob; unreadable files are
    reported by name on stderr and skipped."""
    files = sorted(p for p in Path(path).iterdir() if p.is_file()) if Path(path).is_dir() else sorted(map(Path, glob.glob(path)))
    images, names = [], []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(mnist_style(image))
            names.append(str(file))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            print(f"skipped {file}: {e}", file=sys.stderr)
    if not images:
        raise UserError(f"data.predict_path: no readable digit images in {path!r}")
    return torch.from_numpy(np.stack(images)).unsqueeze(1), names
