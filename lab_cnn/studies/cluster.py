"""A study's runs as Ray tasks (``lab-cnn study --ray ADDRESS``): Ray places, starts and retries them.

Each run is one task asking for its CPU threads and, on a cluster with GPUs, its share of one. A task runs
in a Ray worker process of its own (``max_calls=1``: nothing of a run is left for the next), in a temporary
folder, and returns the files the run wrote (its run folder, a Keras model, its log) with its outcome: the
driver alone writes them into its own ``lightning_logs/``, ``models/`` and report folder, and ``runs.json``,
so one TensorBoard shows every run even when the nodes share no folder. Ray retries a task whose worker
process died; a run's mistake is its outcome, never retried. Ray is imported here only, with ``--ray``.

Ray has no authentication: whoever reaches a cluster's ports can run code on its nodes. ``--ray local``
starts a private one on 127.0.0.1 without the dashboard.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab_cnn.errors import UserError, first_line
from lab_cnn.runs import run_versions
from lab_cnn.studies.study import Job, Settings, Study, check_commands
from lab_cnn.studies.workers import RETRIES, Event, Placement, make

MISSING = "--ray needs Ray on this machine and every node: pip install 'lab-cnn[cluster]' (or pip install 'ray>=2.60')"
SHIPPED = ("lightning_logs", "models")  # the folders of a task's temporary folder that come back to the driver
LOG = "run.log"  # a task's log, in its temporary folder
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def connect(address: str) -> Any:
    """Ray, connected to the cluster at ``address`` (``auto``, ``HOST:PORT``) or to a private one started
    here (``local``: on 127.0.0.1 only, no dashboard)."""
    if address == "local" or address.rpartition(":")[0].strip("[]") in LOOPBACK:
        # Ray's switch for clusters of one machine (named for the systems where it is the default): the
        # node's address is 127.0.0.1, so that a cluster started here listens there only (ray.init's own
        # _node_ip_address does not reach the processes it starts), and a loopback address is connected to
        # as given, where Ray would rewrite it into this machine's network address.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise UserError(MISSING) from None
    if address not in ("local", "auto"):
        reachable(address)
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address == "local":
            ray.init(include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise UserError(f"--ray {address}: no Ray cluster to connect to ({first_line(e)})") from None
    return ray


def reachable(address: str) -> None:
    """A head node listens at ``address`` (HOST:PORT): Ray itself would try to connect for minutes."""
    host, _, port = address.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()):  # not `²`, which int() refuses
        raise UserError(f"--ray {address!r} is not allowed; give auto, local or the head node's HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as e:
        raise UserError(
            f"--ray {address}: no Ray head node there ({e.strerror or first_line(e)}); "
            "start one with `ray start --head`, or use --ray local"
        ) from None


def task(job: Job, settings: Settings, data_dir: str, threads: int, version: int, config: str | None) -> dict:
    """One run, in a Ray worker process of its own, in a temporary folder: its outcome, where it ran, and
    the files it wrote (path relative to the driver's folder, bytes). ``version``: the run folder's number
    on the driver, which the run claims here too; ``config``: the text of a relative config file."""
    import ray

    gpus = ray.get_gpu_ids()
    placement = Placement(threads, f"cuda:{gpus[0]}" if gpus else "cpu")
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        for taken in range(version):  # so that the run claims the same version_N as on the driver
            (job.variant.run_root(job.key) / f"version_{taken}").mkdir(parents=True)
        if config is not None:
            Path(str(job.variant.config)).parent.mkdir(parents=True, exist_ok=True)
            Path(str(job.variant.config)).write_text(config)
        outcome = make(replace(job, log=Path(LOG)), settings, data_dir, placement)
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for shipped in SHIPPED
            for p in sorted(Path(folder, shipped).rglob("*"))
            if p.is_file()
        }
        log = Path(LOG).read_bytes()
        os.chdir("/")
    where = f"node {ray.get_runtime_context().get_node_id()[:8]} ({socket.gethostname()}, pid {os.getpid()})"
    return {"outcome": outcome, "where": where, "files": files, "log": log}


def config_text(job: Job) -> str | None:
    """A relative config file's text, shipped with the task (a node needs no checkout); an absolute path is
    read on the node."""
    path = job.variant.config
    return Path(path).read_text() if path is not None and not Path(path).is_absolute() else None


class RayCluster:
    """The runs as tasks of the Ray cluster at ``address``."""

    def __init__(self, address: str, threads: int | None, runs_per_gpu: int) -> None:
        self.address, self.threads, self.runs_per_gpu = address, threads or 1, runs_per_gpu
        self.ray: Any = None  # Ray, connected by prepare
        self.workers, self.gpu_share, self.summary = 1, 0.0, f"the Ray cluster at {address}"

    def prepare(self, study: Study, path: str, data_dir: str) -> None:
        """Reads every variant's options here, before a cluster is started or reached, then connects."""
        check_commands(study, path, data_dir)
        self.ray = connect(self.address)
        resources = self.ray.cluster_resources()
        self.gpu_share = 1 / self.runs_per_gpu if resources.get("GPU") else 0
        self.workers = max(1, int(resources.get("CPU", 1) // self.threads))  # runs at once, for the estimate
        nodes = len([n for n in self.ray.nodes() if n["Alive"]])
        gpus = f", {resources['GPU']:.0f} GPU(s), {self.runs_per_gpu} run(s) per GPU" if self.gpu_share else ""
        self.summary = (
            f"the Ray cluster at {self.address}: {nodes} node(s), {resources.get('CPU', 0):.0f} CPU(s){gpus}; "
            f"{self.threads} CPU thread(s) per run"
        )

    def __str__(self) -> str:
        return self.summary

    def run(self, jobs: list[Job], settings: Settings, data_dir: str) -> Iterator[Event]:
        """Submits every job at once (Ray queues and places them) and yields each outcome as it comes;
        stopped, it cancels the tasks going (they wrote nothing here)."""
        remote = self.ray.remote(max_calls=1, max_retries=RETRIES)(task).options(
            num_cpus=self.threads, num_gpus=self.gpu_share
        )
        data_dir = str(Path(data_dir).resolve())  # the same path on every node
        going: dict[Any, Job] = {}
        try:
            for job in jobs:
                version = max(run_versions(job.variant.run_root(job.key)), default=-1) + 1
                going[remote.remote(job, settings, data_dir, self.threads, version, config_text(job))] = job
                yield Event("started", job, "the Ray cluster")
            while going:
                [ready], _ = self.ray.wait(list(going), num_returns=1)
                yield self.finished(going.pop(ready), ready)
        finally:
            for ref in going:
                self.ray.cancel(ref, force=True)

    def finished(self, job: Job, ref: Any) -> Event:
        """A task's outcome, its files written here first."""
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:  # its worker died more often than retried, or its node is gone
            return Event("failed", job, "the Ray cluster", f"its Ray task failed: {first_line(e)}")
        for name, content in result["files"].items():
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_bytes(content)
        job.log.parent.mkdir(parents=True, exist_ok=True)
        job.log.write_bytes(result["log"])
        kind, detail = result["outcome"]
        return Event(kind, job, result["where"], detail)
