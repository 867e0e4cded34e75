"""Where runs live: ``lightning_logs/<name>/version_N/`` (Keras runs under ``lightning_logs/keras/``)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from lab_cnn.errors import UserError

LOG_DIR = Path("lightning_logs")  # every run's TensorBoard folder is below it
KERAS_LOG_DIR = LOG_DIR / "keras"  # keras-parity runs, so one TensorBoard shows both frameworks
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"  # in each run folder, after every epoch


def run_versions(run_dir: Path) -> dict[int, Path]:
    """The ``version_N`` folders of one run name (``LOG_DIR/<name>/``), by N."""
    found = (p for p in run_dir.glob("version_*") if p.name.removeprefix("version_").isdigit())
    return {int(p.name.removeprefix("version_")): p for p in found}


def checked_run_name(key: str, name: str) -> str:
    """``name`` if it is a folder name, or names nested in it (``studies/x``), that stays inside the log folder."""
    parts = PurePosixPath(name).parts
    if not name.strip() or PurePosixPath(name).is_absolute() or "\\" in name or any(p in ("..", ".") for p in parts):
        raise UserError(
            f"{key}: {name!r} is not allowed; use a folder name inside {LOG_DIR}/, such as my_run or studies/my_run"
        )
    return name


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
