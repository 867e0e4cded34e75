"""The tests' helpers: where the repository, its data and configs are, and real command runs (``run``)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from queue import Queue

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lab_cnn.cli import LIGHTNING_COMMANDS
from tests.forked import CommandServer

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "data"
CONFIGS = REPO / "configs"

QUIET = {**os.environ, "PYTHONWARNINGS": "ignore"}
COMMANDS = ("lab_cnn", "keras_parity")
SERVERS: dict[str, Queue[CommandServer]] = {command: Queue() for command in COMMANDS}  # the idle ones
STARTED: dict[str, list[CommandServer]] = {command: [] for command in COMMANDS}  # on first use, two at most
STARTING = threading.Lock()


def run(
    *args: str, cwd: Path, command: str = "lab_cnn", timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m <command> ARGS`` as a user would, in ``cwd``, in a process of its own; stdout and stderr
    captured. Without ``env`` the process of a Lightning command or of keras-parity is forked from a server that
    has imported what it imports at start once (tests/forked.py); the other lab-cnn commands, which import
    no Lightning, and any command with ``env`` (added to the environment) start a new interpreter."""
    if env is not None or (command == "lab_cnn" and args[0] not in LIGHTNING_COMMANDS):
        return subprocess.run(
            [sys.executable, "-m", command, *args],
            cwd=cwd,
            env={**QUIET, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    with STARTING:  # tests run up to two commands at a time
        if SERVERS[command].empty() and len(STARTED[command]) < 2:
            STARTED[command].append(CommandServer(command, QUIET))
            SERVERS[command].put(STARTED[command][-1])
    server = SERVERS[command].get()
    try:
        result = server.run(*args, cwd=cwd, timeout=timeout)
    except BaseException:
        with STARTING:  # a server that timed out or ended is not used again; the next call starts another
            STARTED[command].remove(server)
        server.process.kill()
        raise
    SERVERS[command].put(server)
    return result


def run_in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``lab-cnn ARGS`` called in this process (lab_cnn.cli.main, as the command and lab_cnn's functions call it),
    in ``cwd``: its exit code, stdout and stderr. For what needs no process of its own (a refused command)."""
    from lab_cnn.cli import main

    out, err, previous = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def as_in_a_terminal() -> None:
    """``preexec_fn`` of a command a test stops as Ctrl-C does: SIGINT as a terminal's foreground job has it. A
    test run started in the background by a shell without job control (``(make test &)``) hands every child
    SIGINT ignored, and Python then keeps it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fit_args(config: str, *extra: str) -> list[str]:
    """``fit`` of a shipped config on the repository's data, from any folder."""
    return ["fit", "--config", str(CONFIGS / config), "--data.data_dir", str(DATA_DIR), *extra]


def scalars(run_dir: Path, with_steps: bool = False) -> dict[str, list]:
    """Every scalar tag of a run folder (all its event files, oldest first), read back with TensorBoard's
    own reader: the values, or (step, value) pairs."""
    found: dict[str, list] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) if with_steps else e.value for e in acc.Scalars(tag))
    return found


def close_servers() -> None:
    """End the command servers ``run`` started (at the end of the test session)."""
    for servers in STARTED.values():
        for server in servers:
            server.close()
