"""The tests' helpers: where the repository, its data and configs are, and real command runs (``run``)."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "data"
CONFIGS = REPO / "configs"

QUIET = {**os.environ, "PYTHONWARNINGS": "ignore"}
IN_PROCESS = threading.Lock()  # a command called in this process has its working folder and output streams


def run(
    *args: str, cwd: Path, command: str = "lab_cnn", timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``lab-cnn ARGS`` (``command`` ``lab_cnn``) or ``keras-parity ARGS`` (``keras_parity``) in ``cwd``: its exit
    code, stdout and stderr. Without ``env``, the command is called in this process (:func:`run_in_process`); with
    ``env`` (added to the environment), ``python -m <command>`` in a process of its own, for what the process is
    the point of: signals, what a process prints to its console (Lightning's log handler writes to the stderr the
    process started with), DDP, import order, threads, a clock to stop it (``timeout`` is for a process only).
    keras-parity's trainings (``--mode train``) always get a process of their own, as a user's command has: a
    training seeds TensorFlow's global generator and turns on its op determinism, which then hold for everything
    after it in that process."""
    training = command == "keras_parity" and "--mode" in args[:-1] and args[args.index("--mode") + 1] == "train"
    if env is None and not training:
        return run_in_process(*args, cwd=cwd, command=command)
    return subprocess.run(
        [sys.executable, "-m", command, *args],
        cwd=cwd,
        env={**QUIET, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_process(*args: str, cwd: Path, command: str = "lab_cnn") -> subprocess.CompletedProcess:
    """``lab-cnn ARGS`` (or ``keras-parity ARGS``) called in this process through the function its console entry
    point calls (lab_cnn.cli.main, which lab_cnn's functions share; keras_parity.cli.main), in ``cwd``: its exit
    code, stdout and stderr. One at a time (the working folder and the streams are the process's)."""
    main = importlib.import_module(f"{command}.cli").main

    out, err = io.StringIO(), io.StringIO()
    with IN_PROCESS:
        previous = os.getcwd()
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


def terminal_job(args: list[str], cwd: Path, **options: object) -> subprocess.Popen:
    """``args`` started as a terminal's foreground job, which a test stops as Ctrl-C does (``os.killpg(pid,
    SIGINT)``): a process group of its own, SIGINT as a terminal gives it, its output piped as text."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=as_in_a_terminal,
        **options,
    )


def as_in_a_terminal() -> None:
    """``preexec_fn`` of a command a test stops as Ctrl-C does: SIGINT as a terminal's foreground job has it. A
    test run started in the background by a shell without job control (``(make test &)``) hands every child
    SIGINT ignored, and Python then keeps it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def steps_per_call(k: int) -> list[str]:
    """The fast path's callback with K steps per call, as configs/trainer/gpu.yaml adds it (without the GPU)."""
    return ["--trainer.callbacks+=lab_cnn.fast.StepsPerCall", f"--trainer.callbacks.steps={k}"]


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
