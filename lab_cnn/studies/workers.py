"""A study's runs, several at once on this machine: each run in a fresh process forked from a warm one.

The driver (``lab-cnn study``) never forks itself: it starts multiprocessing's ``forkserver``, a new
interpreter that imports lab_cnn, Lightning and, for a study with Keras runs, TensorFlow once, and runs
no torch op and starts no TensorFlow runtime (forking after their thread pools or CUDA started is unsafe).
Each run is one fork of that server (:func:`work`): it pays no start-up, and starts with nothing of an
earlier run (its seeds, threads, device and warnings are set by the run itself in a process of its own).
A fork per run, not a pool of long-lived workers, also means one killed run takes no other run with it,
which a ``ProcessPoolExecutor`` would (its pool breaks). Up to N runs go at once, each on a slot
(:class:`Placement`): its CPU threads and, on a GPU machine, its GPU.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import multiprocessing.forkserver
import os
import select
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from lab_cnn.errors import UserError, first_line, user_error
from lab_cnn.studies.study import Job, Settings, Study, check_commands, run_variant

RETRIES = 2  # a run whose worker died (killed, out of memory) is made again this many times; a mistake never
PRELOAD = ["lab_cnn.lightning_cli", "lab_cnn.studies.workers", "keras_parity.cli"]
TENSORFLOW = ["keras_parity.preload"]  # imported first, not started (keras_parity.keras_model would start it)
GB_PER_RUN = 2  # memory per run the default number of workers leaves (a run holds MNIST, and TensorFlow for Keras)


@dataclass(frozen=True)
class Placement:
    """What one run gets: its CPU threads (torch's and TensorFlow's), and ``cpu`` or the GPU ``cuda:N``."""

    threads: int
    device: str = "cpu"


@dataclass
class Event:
    """What happened to a run: ``started``, ``done`` (``detail``: its record), ``failed`` (the reason, one
    line) or ``retried`` (why its worker ended); ``where``: the worker that ran it."""

    kind: str
    job: Job
    where: str
    detail: Any = None


def cores() -> int:
    """The CPU cores this process may use (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0))


def gpus() -> int:
    """The CUDA GPUs this machine has. Asked in the driver, which never forks: the runs' server has not
    touched CUDA, so each fork may start it."""
    import torch

    return torch.cuda.device_count()


def placements(workers: int | None, threads: int | None, runs_per_gpu: int) -> list[Placement]:
    """One slot per worker: by default one per core (each with a thread) on a CPU machine, as far as memory
    allows, or ``runs_per_gpu`` per GPU; the threads default to the cores shared out among the workers."""
    found = gpus()
    if found and workers is not None and workers > found * runs_per_gpu:
        raise UserError(
            f"--workers {workers}: this machine has {found} GPU(s) at --runs-per-gpu {runs_per_gpu}, room for "
            f"{found * runs_per_gpu} runs at once; raise --runs-per-gpu or give fewer workers"
        )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    n = workers or (found * runs_per_gpu if found else max(1, min(cores(), int(memory // GB_PER_RUN))))
    each = threads or max(1, cores() // n)
    return [Placement(each, f"cuda:{slot % found}" if found else "cpu") for slot in range(n)]


def describe(slots: list[Placement]) -> str:
    devices = sorted({p.device for p in slots})
    where = "the CPU" if devices == ["cpu"] else ", ".join(devices)
    return (
        f"{len(slots)} worker(s), {slots[0].threads} CPU thread(s) per run, on {where} (this machine: {cores()} cores)"
    )


def place(placement: Placement, keras: bool) -> None:
    """This process's threads and device, before its run starts torch's or TensorFlow's thread pools (for a
    Keras run TensorFlow is imported here, if the server did not, to set its threads before it starts)."""
    import torch

    if placement.device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = placement.device.removeprefix("cuda:")
        os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # a Keras run on a shared GPU takes what it uses, not all
    os.environ["OMP_NUM_THREADS"] = str(placement.threads)  # for what reads it when it starts
    torch.set_num_threads(placement.threads)
    torch.set_num_interop_threads(placement.threads)
    if keras:
        from keras_parity.preload import tensorflow as tf  # imported as in the server: its start-up log silenced

        tf.config.threading.set_intra_op_parallelism_threads(placement.threads)
        tf.config.threading.set_inter_op_parallelism_threads(placement.threads)


def start_server(context: Any, keras: bool) -> None:
    """The warm server started with Ctrl-C (SIGINT) blocked in it, and so in every run forked from it, from their
    first instruction on (a thread's signal mask survives fork and exec). A terminal sends Ctrl-C to the whole
    process group; the study's process stops its runs itself (:meth:`LocalWorkers.stop`), while the server cut
    off in its imports, or a run in its set-up, would print a traceback over the study's one line."""
    context.set_forkserver_preload((TENSORFLOW if keras else []) + PRELOAD)
    # The server's start starts multiprocessing's resource tracker first, which unblocks SIGINT after starting
    # it (CPython's fix of bpo-33613, Lib/multiprocessing/resource_tracker.py): started before, it leaves it as is
    resource_tracker.ensure_running()
    with ctrl_c_held():  # this process's Ctrl-C, held meanwhile, acted on after
        multiprocessing.forkserver.ensure_running()
    # Its imports (seconds) waited for here, where Ctrl-C stops the study at once (the server forks nothing before
    # they end): the start of a run, which Ctrl-C waits for (LocalWorkers.start), then takes milliseconds
    ready = context.Process(target=does_nothing, name="lab-cnn-server-ready")
    try:
        ready.start()
    except (EOFError, ConnectionError):  # the server ended in its imports (killed, out of memory)
        raise UserError("the study's warm server ended as it started (killed?); run the same command again") from None
    ready.join()


def does_nothing() -> None:
    """The process :func:`start_server` starts to learn that the server is ready."""


@contextmanager
def ctrl_c_held(deliver: bool = True) -> Iterator[None]:
    """Ctrl-C during the block held until it ends, then acted on as it would have been (``deliver``) or dropped.
    SIGINT is blocked in the block, in any thread: a process started in it (:func:`start_server`'s server, or one
    multiprocessing starts again because the first died) starts with it blocked. In the main thread, where Python
    raises KeyboardInterrupt between any two steps, a Ctrl-C pressed meanwhile is held by a handler of its own."""
    previous = signal.getsignal(signal.SIGINT)
    hold = threading.current_thread() is threading.main_thread() and previous is not None  # None: set outside Python
    pressed: list[int] = []
    if hold:
        signal.signal(signal.SIGINT, lambda number, _: pressed.append(number))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one pressed meanwhile comes now, to the handler
        if hold:
            signal.signal(signal.SIGINT, previous)
    if pressed and deliver:
        signal.raise_signal(signal.SIGINT)


def check_in_fork(result: Connection, study: Study, path: str, data_dir: str, driver: int) -> None:
    """:meth:`LocalWorkers.prepare`'s reading of the study's commands, in a fork of the warm server: sends
    ``("refused", reason)`` or ``("read", None)``; a bug's traceback goes to stderr, and nothing is sent."""
    end_with(driver)
    show_as("lab-cnn-check")
    try:
        check_commands(study, path, data_dir)
    except UserError as e:
        result.send(("refused", str(e)))
    else:
        result.send(("read", None))


def show_as(name: str) -> None:
    """The name ``ps``, ``top`` and ``pkill`` show for this process: each fork of the warm server is
    otherwise named as the server is (``python``). Linux's, up to 15 characters; elsewhere the name stays."""
    with contextlib.suppress(OSError):  # no /proc
        Path("/proc/self/comm").write_text(name[:15])


def output_to(path: os.PathLike[str]) -> None:
    """This process's stdout and stderr (Python's and native code's) into the run's log."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for stream in (1, 2):
        os.dup2(fd, stream)
    os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a TextIOWrapper at start
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def work(result: Connection, job: Job, settings: Settings, data_dir: str, placement: Placement, driver: int) -> None:
    """One run, in a fresh fork of the warm server: sends ``("done", record)`` or ``("failed", reason)``.
    A worker that ends without sending either died (a kill, the memory), and its run is made again."""
    end_with(driver)
    show_as("lab-cnn-run")
    gc.freeze()  # the server's imports live as long as the run: the collector need not walk them again and again
    result.send(make(job, settings, data_dir, placement))


def end_with(driver: int) -> None:
    """This process killed (SIGKILL) when the study's process ``driver`` ends, however it ends: a killed study
    leaves no run going to clash with its rerun. Not PR_SET_PDEATHSIG, which would tie it to its parent, the
    warm server: Python keeps a forkserver going while any process forked from it runs (each holds the
    server's "alive" pipe), so the runs of a killed study would go on to their end."""
    try:
        ended = os.pidfd_open(driver)  # readable once the process has ended
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        select.select([ended], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="end-with-the-study", daemon=True).start()


def make(job: Job, settings: Settings, data_dir: str, placement: Placement) -> tuple[str, Any]:
    """One run in this process, a process of its own: its output into its log; ``("done", record)`` or
    ``("failed", reason)``, the reason of a mistake in one line, of a bug with its traceback in the log."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    output_to(job.log)
    place(placement, keras=job.variant.keras is not None)
    try:
        return "done", run_variant(job, settings, data_dir, placement)
    except Exception as e:  # noqa: BLE001 - a run's mistake is one line of the study; a bug's traceback goes to the log
        message = user_error(e)
        if message is None:
            traceback.print_exc()
            return "failed", f"crashed: {type(e).__name__}: {first_line(e)} (traceback in its log)"
        print(f"{job.program}: error: {message}", file=sys.stderr)
        return "failed", message


def received(result: Connection) -> tuple[str, Any] | None:
    """What a worker sent, or None when it ended without sending."""
    try:
        return result.recv()
    except EOFError:
        return None


def ended(process: multiprocessing.process.BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code} before it reported"


@dataclass
class Running:
    process: Any  # a forkserver Process
    result: Connection
    job: Job
    slot: int
    outcome: tuple[str, Any] | None = None


class LocalWorkers:
    """Up to ``len(slots)`` runs at once on this machine, each a fork of the warm server."""

    def __init__(self, slots: list[Placement]) -> None:
        self.slots, self.workers = slots, len(slots)
        self.running: dict[int, Running] = {}  # by the process's sentinel
        self.context: Any = None  # multiprocessing's forkserver context, once prepare started its server

    def __str__(self) -> str:
        return describe(self.slots)

    def prepare(self, study: Study, path: str, data_dir: str) -> None:
        """Starts the warm server and reads every variant's options (:func:`check_commands`) in a fork of it:
        the server imports Lightning (and TensorFlow) for the runs, so the study's own process need not import
        them too, one after the other on the same cores (2.1 s of a 4-run study's start here)."""
        # Should the server's imports ask torch whether there is a GPU, NVML answers, leaving CUDA unstarted:
        # a fork of a process that started CUDA cannot use it
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        self.context = multiprocessing.get_context("forkserver")
        start_server(self.context, keras=any(v.keras is not None for c in study.comparisons for v in c.variants))
        result, sending = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=check_in_fork, args=(sending, study, path, data_dir, os.getpid()), name="lab-cnn-check"
        )
        with ctrl_c_held():  # started and known, then stopped (as a run's fork, in start)
            process.start()
            sending.close()
        outcome = None
        try:
            outcome = received(result)
        finally:  # stopped by Ctrl-C meanwhile: ended here, before its answer finds the pipe closed (a traceback)
            if outcome is None and process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
            process.join()
        if outcome is None:  # killed, or a bug, whose traceback it printed
            raise UserError(f"reading {path}'s commands failed: the process reading them ended ({ended(process)})")
        if outcome[0] == "refused":
            raise UserError(outcome[1])

    def run(self, jobs: list[Job], settings: Settings, data_dir: str) -> Iterator[Event]:
        """Makes every job, yielding what happens; stopped (Ctrl-C, or closing this generator), it kills the
        runs going and removes what they left, so the same command makes them again. After :meth:`prepare`."""
        pending, free, deaths = deque(jobs), list(range(len(self.slots))), {job.key: 0 for job in jobs}
        try:
            while pending or self.running:
                while pending and free:
                    yield self.start(pending.popleft(), free.pop(0), settings, data_dir)
                for event in self.wait():
                    free.append(event.slot)
                    yield self.after_death(event, deaths, pending) if event.kind == "died" else event
        finally:
            with ctrl_c_held(deliver=False):  # a second Ctrl-C while it stops: it is stopping
                self.stop()

    def after_death(self, event: SlotEvent, deaths: dict[str, int], pending: deque[Job]) -> Event:
        """A dead worker's run, what it left removed: made again, up to RETRIES times, then failed."""
        deaths[event.job.key] += 1
        event.job.discard()
        if deaths[event.job.key] <= RETRIES:
            pending.appendleft(event.job)
            return Event("retried", event.job, event.where, event.detail)
        return Event(
            "failed", event.job, event.where, f"its worker died {deaths[event.job.key]} times ({event.detail})"
        )

    def start(self, job: Job, slot: int, settings: Settings, data_dir: str) -> Event:
        result, sending = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=work, args=(sending, job, settings, data_dir, self.slots[slot], os.getpid())
        )
        with ctrl_c_held():  # a fork cut off before it has its job prints a traceback: started and known, then stopped
            process.start()
            sending.close()  # the worker holds the only sending end: its death ends the pipe
            self.running[process.sentinel] = Running(process, result, job, slot)
        return Event("started", job, self.where(slot, process.pid))

    def where(self, slot: int, pid: int | None) -> str:
        device = self.slots[slot].device
        return f"worker {slot + 1} (pid {pid}{'' if device == 'cpu' else ', ' + device})"

    def wait(self) -> Iterator[SlotEvent]:
        """The runs that ended, once at least one has: its outcome as sent, or ``died``."""
        waiting = {r.result: r for r in self.running.values() if r.outcome is None}
        for ready in wait([*self.running, *waiting]):
            if isinstance(ready, Connection):
                waiting[ready].outcome = received(ready)
                if waiting[ready].outcome is None:  # its worker ended without a word: it died
                    waiting[ready].process.join()
        for sentinel in [s for s, r in self.running.items() if not r.process.is_alive()]:
            run = self.running.pop(sentinel)
            run.process.join()
            if run.outcome is None and run.result.poll():
                run.outcome = received(run.result)  # sent just before it ended
            run.result.close()
            where = self.where(run.slot, run.process.pid)
            if run.outcome is None:
                yield SlotEvent("died", run.job, where, ended(run.process), run.slot)
            else:
                yield SlotEvent(run.outcome[0], run.job, where, run.outcome[1], run.slot)

    def stop(self) -> None:
        """Kill the runs going and remove their unfinished folders, logs and model files."""
        for run in self.running.values():
            if run.process.is_alive():
                os.kill(run.process.pid, signal.SIGKILL)
        for run in self.running.values():
            run.process.join()
            if run.outcome is None or run.outcome[0] != "done":  # a finished run's record is in its folder: kept
                run.job.discard()
        self.running.clear()


@dataclass
class SlotEvent(Event):
    slot: int = 0
