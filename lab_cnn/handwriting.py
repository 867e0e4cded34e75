"""Your own digit images (scans, phone photos), prepared the way MNIST's digits were: ink light on
dark, cropped to the digit, scaled to fit 20x20 keeping its aspect, centred by centre of mass in 28x28.

Before it looks for the digit, a photo is cleaned: its alpha channel is laid on a background that
contrasts with the ink, a huge frame is scaled down, uneven lighting (a shadow, a bright band) is
taken out by subtracting the background estimated with a grey opening wider than a stroke, sensor
noise by a median filter; Otsu's threshold then finds the ink, and its main connected piece (with
the pieces beside it) is the digit.
"""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError
from scipy import ndimage

from lab_cnn.errors import UserError
from lab_cnn.nets import IMAGE_SIZE

DIGIT_BOX = 20  # MNIST digits fit a 20x20 box inside the 28x28 image
WORKING_SIDE = 256  # photos are cleaned at this size (longest side): enough for a digit, fast for a huge frame
SMALLEST_DIGIT = 0.08  # a digit spanning less of the (working) image's shorter side is too small to trust


@dataclass
class Digit:
    """One image as the net sees it, and what was noticed on the way."""

    name: str
    source: Image.Image  # the input, as read (for the contact sheet)
    pixels: np.ndarray  # uint8 28x28, ink bright
    warning: str | None = None


def grayscale(image: Image.Image) -> np.ndarray:
    """Float luminance in [0, 255]; a transparent background becomes the colour the ink stands out from."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        gray, alpha = np.asarray(image.convert("RGBA").convert("L"), dtype=np.float32), rgba[..., 3] / 255
        opaque = alpha > 0.5
        ink_is_dark = not opaque.any() or gray[opaque].mean() < 128
        background = 255.0 if ink_is_dark else 0.0
        return gray * alpha + background * (1 - alpha)
    return np.asarray(image.convert("L"), dtype=np.float32)


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 255]."""
    counts, edges = np.histogram(values, bins=256, range=(0, 256))
    weights = counts / max(counts.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(weights)
    mean_below = np.cumsum(weights * centres)
    total_mean = mean_below[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * below - mean_below) ** 2 / (below * (1 - below))
    if np.isnan(between).all():  # a single level: everything is above half of it
        return float(values.min()) / 2
    return float(centres[np.nanargmax(between)])


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Ink as bright values on black, in [0, 255], with the lighting and the noise taken out. Dark ink
    on paper is measured against the paper around it (a shadow dims paper and ink alike); light ink
    on a dark ground, as its height above the ground."""
    smooth = ndimage.median_filter(gray, size=3)  # specks of noise are no ink
    ground = np.median(smooth)
    width = max(3, min(gray.shape) // 6)  # wider than a stroke, narrower than a shadow's edge
    if ground - smooth.min() > smooth.max() - ground:  # the ink is the darker extreme
        paper = ndimage.gaussian_filter(ndimage.grey_closing(smooth, size=(width, width)), sigma=width / 4)
        ink = 255 * (paper - smooth) / np.maximum(paper, 1)
    else:
        ink = smooth - ndimage.gaussian_filter(ndimage.grey_opening(smooth, size=(width, width)), sigma=width / 4)
    return np.clip(ink, 0, 255)


def digit_mask(ink: np.ndarray) -> np.ndarray | None:
    """The pixels of the digit: above Otsu's threshold, in the largest connected piece and the pieces
    near it that are not specks. None when there is no ink."""
    if ink.max() <= 0:
        return None
    mask = ink > max(otsu(ink[ink > 0]), 0.1 * ink.max())
    pieces, count = ndimage.label(ndimage.binary_dilation(mask, iterations=2), structure=np.ones((3, 3)))
    if count == 0:
        return None
    sizes = ndimage.sum(mask, pieces, index=range(1, count + 1))
    main = int(np.argmax(sizes)) + 1
    rows, cols = ndimage.find_objects(pieces)[main - 1]
    height, width = rows.stop - rows.start, cols.stop - cols.start
    near = np.zeros(count + 1, dtype=bool)
    for label, (r, c) in enumerate(ndimage.find_objects(pieces), start=1):
        centre_r, centre_c = (r.start + r.stop) / 2, (c.start + c.stop) / 2
        inside = (
            rows.start - height / 2 <= centre_r <= rows.stop + height / 2
            and cols.start - width / 2 <= centre_c <= cols.stop + width / 2
        )
        near[label] = label == main or (inside and sizes[label - 1] >= 0.05 * sizes[main - 1])
    return mask & near[pieces]


def mnist_style(image: Image.Image) -> tuple[np.ndarray, str | None]:
    """A uint8 28x28 array of ``image`` (any size, dark on light or light on dark), and a warning when the
    digit found is too small or not digit-like (None when it looks fine)."""
    working = image.copy()
    working.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    ink = ink_map(grayscale(working))
    mask = digit_mask(ink)
    if mask is None:
        raise ValueError("no digit found (a blank image)")
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    crop = (ink * ndimage.binary_dilation(mask, iterations=1))[top:bottom, left:right]
    crop = np.clip(crop / np.percentile(ink[mask], 90), 0, 1)  # strokes as even as MNIST's
    height, width = crop.shape
    warning = None
    scale = image.width / working.width  # to say sizes in the image's own pixels
    found = f"{width * scale:.0f}x{height * scale:.0f} px of the {image.width}x{image.height} image"
    if max(height, width) < SMALLEST_DIGIT * min(ink.shape):
        warning = f"the digit found is only {found}: is it there, and large enough?"
    elif width > 2 * height or (
        mask[top:bottom, left:right].mean() > 0.8 and 4 * min(height, width) > max(height, width)
    ):
        # a blob (a box mostly ink) is not a digit; a thin upright stroke, all ink too, is a 1
        warning = (
            f"what was found ({found}, {100 * mask[top:bottom, left:right].mean():.0f}% ink) does not look like a digit"
        )
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(
        Image.fromarray(crop * 255).convert("L").resize(size, Image.Resampling.LANCZOS), dtype=np.float32
    )
    centre_y, centre_x = ndimage.center_of_mass(small) if small.sum() else (size[1] / 2, size[0] / 2)
    top = int(np.clip(round(IMAGE_SIZE / 2 - centre_y), 0, IMAGE_SIZE - size[1]))
    left = int(np.clip(round(IMAGE_SIZE / 2 - centre_x), 0, IMAGE_SIZE - size[0]))
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    canvas[top : top + size[1], left : left + size[0]] = small
    return canvas.clip(0, 255).round().astype(np.uint8), warning


def image_files(path: str) -> list[Path]:
    """The regular files of a folder, or those a glob matches (a single file too), sorted."""
    found = Path(path).iterdir() if Path(path).is_dir() else map(Path, glob.glob(path))
    files = sorted(p for p in found if p.is_file())
    if not files and not Path(path).exists() and not glob.has_magic(path):
        raise UserError(f"data.predict_path: {path!r} does not exist")
    return files


def read_digit(file: Path) -> Digit:
    """One image file as MNIST's digits are; a ValueError saying why for a file that is no readable image
    (a decompression bomb too: PIL refuses images of more than twice its MAX_IMAGE_PIXELS) or holds no digit."""
    try:
        with Image.open(file) as image:
            image.load()
            pixels, warning = mnist_style(image)
            return Digit(str(file), image.copy(), pixels, warning)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as e:
        raise ValueError(str(e)) from None


def load_digits(path: str) -> list[Digit]:
    """Every readable image of ``path`` (a folder or a glob) as MNIST's digits are; an unreadable file or one
    with no digit is named on stderr and skipped, a doubtful one is kept with a one-line warning."""
    digits, skipped = [], []
    for file in image_files(path):
        try:
            digit = read_digit(file)
        except ValueError as e:
            skipped.append(f"{file}: {e}")
            continue
        if digit.warning:
            print(f"warning: {file}: {digit.warning}", file=sys.stderr)
        digits.append(digit)
    if not digits:
        why = f" ({skipped[0]}{f'; and {len(skipped) - 1} more' if len(skipped) > 1 else ''})" if skipped else ""
        raise UserError(f"data.predict_path: no readable digit images in {path!r}{why}")
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    return digits


def contact_sheet(
    digits: list[Digit], predicted: list[int], probability: list[float], path: Path, columns: int = 6
) -> None:
    """A PNG of every input beside the 28x28 the net saw and its prediction: why a digit was read as it was."""
    cell, text_height = 64, 14
    tile_width, tile_height = 2 * cell + 12, cell + text_height + 8
    rows = -(-len(digits) // columns)
    sheet = Image.new("RGB", (columns * tile_width, rows * tile_height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (digit, label, p) in enumerate(zip(digits, predicted, probability)):
        x, y = (i % columns) * tile_width + 4, (i // columns) * tile_height + 4
        source = ImageOps.exif_transpose(digit.source).convert("RGB")
        source.thumbnail((cell, cell))
        sheet.paste(source, (x + (cell - source.width) // 2, y + (cell - source.height) // 2))
        sheet.paste(
            Image.fromarray(digit.pixels).resize((cell, cell), Image.Resampling.NEAREST).convert("RGB"),
            (x + cell + 4, y),
        )
        note = " (!)" if digit.warning else ""
        draw.text((x, y + cell + 2), f"{label} ({100 * p:.0f}%){note}  {Path(digit.name).name[:14]}", fill="black")
    sheet.save(path)
