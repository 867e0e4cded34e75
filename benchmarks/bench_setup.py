"""``make bench-setup``: ``make setup``'s install by uv (tools/install.py) against pip's, side by side.

Each installs lab-cnn with its dev extra into a new venv, one after the other, with caches of their own
that start empty (the user's are not touched), on the same machine and with the same pip settings; then
the two venvs' packages are compared (name and version). The table is printed and appended to
benchmarks/RESULTS.md with the machine's details.

    python -m benchmarks.bench_setup
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.bench import HERE, REPO, versions

GOAL = 0.5  # uv's install in at most half pip's time, or make setup's switch to it is not worth its code


def installed(python: Path) -> set[str]:
    """Each package in the venv of ``python`` as ``pip freeze`` gives it (``name==version``, or ``name @ URL``),
    names as PyPI normalizes them."""
    frozen = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True)
    lines = [line.replace(" @ ", "@").partition("==" if "==" in line else "@") for line in frozen.stdout.splitlines()]
    return {f"{name.lower().replace('_', '-')}{sep}{rest}" for name, sep, rest in lines if name and name != "uv"}


def install(way: str, folder: Path) -> dict:
    """One install into a new venv in ``folder``: its seconds and packages."""
    venv = folder / way
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)  # on the interpreter this venv is on
    python = venv / "bin" / "python"
    caches = {"PIP_CACHE_DIR": str(folder / f"{way}-pip-cache"), "UV_CACHE_DIR": str(folder / f"{way}-uv-cache")}
    command: list[str | Path]
    if way == "pip":
        command = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", f"{REPO}[dev]"]
    else:
        command = [python, REPO / "tools" / "install.py"]
    start = time.perf_counter()
    subprocess.run(command, env={**os.environ, **caches}, check=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "packages": installed(python)}


def main() -> None:
    p = argparse.ArgumentParser(prog="make bench-setup", description=__doc__.splitlines()[0])
    p.add_argument("--results-md", default=str(HERE / "RESULTS.md"), help="Markdown file the table is appended to")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="lab-cnn-bench-setup-") as tmp:
        runs = {way: install(way, Path(tmp)) for way in ("pip", "uv")}
    ratio = runs["uv"]["seconds"] / runs["pip"]["seconds"]
    differ = sorted(runs["pip"]["packages"] ^ runs["uv"]["packages"])
    lines = [
        "| install | seconds | packages |",
        "| --- | ---: | ---: |",
        *(f"| {way} | {run['seconds']:.0f} | {len(run['packages'])} |" for way, run in runs.items()),
        "",
        f"Packages that differ (name==version): {', '.join(differ) if differ else 'none'}.",
        "",
        "| goal | measured | wanted | met |",
        "| --- | ---: | --- | --- |",
        f"| uv's seconds / pip's | {ratio:.2f} | <= {GOAL} | {'yes' if ratio <= GOAL else 'NO'} |",
    ]
    report = "\n".join(lines)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{report}")
    with open(args.results_md, "a") as f:
        f.write(f"\n## {when}: make setup, uv and pip\n\nMachine: {versions()}.  \n")
        f.write(f"Command: `python -m benchmarks.bench_setup`.\n\n{report}\n")
    print(f"\nAppended to {args.results_md}")


if __name__ == "__main__":
    main()
