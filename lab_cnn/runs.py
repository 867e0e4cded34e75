"""Where runs live: ``lightning_logs/<name>/version_N/`` (Keras runs under ``lightning_logs/keras/``)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from lab_cnn.errors import UserError, first_line

LOG_DIR = Path("lightning_logs")  # every run's TensorBoard folder is below it
KERAS_LOG_DIR = LOG_DIR / "keras"  # keras-parity runs, so one TensorBoard shows both frameworks
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"  # in each run folder, after every epoch


def run_versions(run_dir: Path) -> dict[int, Path]:
    """The ``version_N`` folders of one run name (``LOG_DIR/<name>/``), by N."""
    found = (p for p in run_dir.glob("version_*") if re.fullmatch(r"[0-9]+", p.name.removeprefix("version_")))
    return {int(p.name.removeprefix("version_")): p for p in found}


def checked_run_name(
    key: str, name: object, inside: Path = LOG_DIR, reserved: tuple[str, ...] = (KERAS_LOG_DIR.name,)
) -> str:
    """``name`` if it names a folder (or folders nested, ``studies/x``) that stays ``inside``: not absolute,
    no ``.`` or ``..``, printable, each part a file name the system takes, and not one of the ``reserved``
    folders (the Keras runs')."""
    if not isinstance(name, str):
        raise UserError(f"{key}: {name!r} is not allowed; use a folder name")
    parts = name.split("/")
    fine = all(part not in ("", ".", "..") and len(part.encode()) <= 255 for part in parts)
    if not fine or not name.isprintable() or "\\" in name or parts[0] in reserved:
        raise UserError(
            f"{key}: {name!r} is not allowed; use a folder name inside {inside}/, such as my_run or studies/my_run"
        )
    return name


def check_can_write(key: str, folder: Path) -> None:
    """That ``folder`` exists or can be made, and can be written: its nearest existing ancestor is a folder
    where a file can be created (tried, and removed). Nothing is left behind."""
    existing = next(p for p in [folder, *folder.parents] if p.exists() or p == Path(p.anchor or "."))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise UserError(f"{key}: {folder} cannot be written ({e.strerror or first_line(e)})") from None


def newest_last_checkpoint(run_dir: Path) -> tuple[int, Path]:
    """The highest ``version_N`` under ``run_dir`` holding ``checkpoints/last.ckpt``, and that file."""
    versions = run_versions(run_dir)
    found = [n for n in sorted(versions) if (versions[n] / LAST_CHECKPOINT).is_file()]
    if not found:
        raise UserError(
            f"--ckpt_path last: no {run_dir}/version_*/{LAST_CHECKPOINT.as_posix()}; train first, or give a "
            "checkpoint's path"
        )
    return found[-1], versions[found[-1]] / LAST_CHECKPOINT


def claim_version(root: Path) -> int:
    """The lowest free ``version_N`` under ``root``, taken with an atomic mkdir: runs started at the same
    moment never share a folder."""
    root.mkdir(parents=True, exist_ok=True)
    version = max(run_versions(root), default=-1) + 1
    while True:
        try:
            (root / f"version_{version}").mkdir()
            return version
        except FileExistsError:
            version += 1
