"""``lab-cnn study --workers N``: runs at once on this machine, each a fork of a warm server; the same numbers
whatever the number of workers; a killed worker's run made again, Ctrl-C and the same command again. And
``--ray``: the same runs as tasks of a real two-node Ray cluster, and a private one on 127.0.0.1 only."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from lab_cnn.errors import UserError
from lab_cnn.studies.cluster import MISSING, reachable
from lab_cnn.studies.workers import cores, placements
from tests.helpers import CONFIGS, DATA_DIR, QUIET, terminal_job

REPORT = Path("reports") / "tiny-1epochs-3batches"
BASELINE = str(CONFIGS / "baseline.yaml")


def study_file(folder: Path, keras: bool = True, epochs: int = 1) -> None:
    """Two lab-cnn variants and, with ``keras``, one Keras variant."""
    comparisons = {
        "neurons": {
            "framework": "pytorch",
            "variants": {
                "fc50": {"config": BASELINE},
                "fc25": {"config": BASELINE, "args": ["--model.init_args.hidden_units=25"]},
            },
        }
    }
    if keras:
        comparisons["conv"] = {"framework": "keras", "variants": {"one": {"keras": {"conv_layers": 1}}}}
    (folder / "tiny.yaml").write_text(yaml.safe_dump({"name": "tiny", "epochs": epochs, "comparisons": comparisons}))


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "lab_cnn", "study", "tiny.yaml", "--data-dir", str(DATA_DIR), *extra]


def study(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command("--limit-batches", "3", *extra), cwd=folder, env=QUIET, capture_output=True, text=True, timeout=600
    )


def numbers(folder: Path, report: Path = REPORT) -> dict[str, dict]:
    """Each run's numbers (what does not depend on timing) from runs.json."""
    runs = json.loads((folder / report / "runs.json").read_text())
    fields = ("train_acc", "train_loss", "test_acc", "test_loss", "test_images", "params", "threads", "device")
    return {key: {f: run[f] for f in fields} for key, run in runs.items()}


@pytest.mark.long  # two short studies of four runs each (about 100 s here)
def test_one_or_two_workers_give_the_same_records_with_their_threads_and_device(tmp_path) -> None:
    records = {}
    for workers in ("1", "2"):
        folder = tmp_path / workers
        folder.mkdir()
        study_file(folder)
        result = study(folder, "--workers", workers, "--threads-per-run", "1")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"3 run(s) to make on {workers} worker(s), 1 CPU thread(s) per run, on the CPU" in result.stdout
        assert len(re.findall(r": done in \d+ s on worker [12] \(pid \d+\)", result.stdout)) == 3
        assert "(3/3 done, 0 going)" in result.stdout
        records[workers] = numbers(folder)
        logs = sorted(p.name for p in (folder / REPORT / "logs").iterdir())
        assert logs == sorted(f"{key}.log" for key in records[workers])
        keras_log = next((folder / REPORT / "logs").glob("keras-*.log")).read_text()
        assert "$ python -m keras_parity --mode test" in keras_log and "Test accuracy:" in keras_log
    assert records["1"] == records["2"]
    assert len(records["1"]) == 3 and all(r["threads"] == 1 and r["device"] == "cpu" for r in records["1"].values())


def started(process: subprocess.Popen, count: int) -> list[tuple[int, str]]:
    """The pid and key of the first ``count`` runs the study's progress lines say started."""
    runs: list[tuple[int, str]] = []
    assert process.stdout is not None
    while len(runs) < count:
        line = process.stdout.readline()
        assert line, "the study ended before its runs started"
        runs += [
            (int(pid), key) for pid, key in re.findall(r"on worker \d \(pid (\d+)\) \(output: .*/(.*)\.log\)", line)
        ]
    return runs


def training(folder: Path, key: str, timeout: float = 120) -> None:
    """Wait until the run ``key`` is training: it has logged into a run folder without the end mark (a folder
    of the same run finished before, which ``--force`` makes again, does not count)."""
    deadline = time.monotonic() + timeout
    while not any(
        list(run.glob("events.*")) and not (run / "study_run.json").is_file()
        for run in folder.glob(f"lightning_logs/studies/{key}/version_*")
    ):
        assert time.monotonic() < deadline, f"{key} did not start training"
        time.sleep(0.1)


@pytest.mark.long  # a study killed and run again (about 90 s here)
def test_a_killed_worker_is_made_again_and_ctrl_c_then_the_same_command_finishes_each_run_once(tmp_path) -> None:
    study_file(tmp_path, keras=False, epochs=3)
    args = command("--workers", "2", "--limit-batches", "100")
    process = subprocess.Popen(args, cwd=tmp_path, env=QUIET, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first, key = started(process, 1)[0]
    training(tmp_path, key)
    assert psutil.Process(first).name() == "lab-cnn-run"  # as ps and top show it
    os.kill(first, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stdout + stderr
    assert re.search(rf": worker \d \(pid {first}\) died \(killed by SIGKILL\); made again", stdout)
    report = Path("reports") / "tiny-3epochs-100batches"
    runs = json.loads((tmp_path / report / "runs.json").read_text())
    assert len(runs) == 2 and all(len(run["train_acc"]) == 3 for run in runs.values())
    folders = sorted(tmp_path.glob("lightning_logs/studies/*/version_*"))
    assert len(folders) == 2 and all((f / "study_run.json").is_file() for f in folders)  # the killed one removed
    assert "Failed runs" not in (tmp_path / report / "report.md").read_text()

    # Ctrl-C (the whole process group, as a terminal sends it) with two runs going, then the same command
    interrupted = terminal_job([*args, "--force"], tmp_path, env=QUIET)
    for _, key in started(interrupted, 2):
        training(tmp_path, key)
    os.killpg(interrupted.pid, signal.SIGINT)
    _, stderr = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        f"lab-cnn: interrupted; 2 finished runs are kept in {report / 'runs.json'}; the same command goes on from there"
    )
    assert sorted(tmp_path.glob("lightning_logs/studies/*/version_*")) == folders  # the two going left nothing
    assert not list((tmp_path / report / "logs").iterdir())
    again = subprocess.run([*args, "--force"], cwd=tmp_path, env=QUIET, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(json.loads((tmp_path / report / "runs.json").read_text())) == 2
    assert len(list(tmp_path.glob("lightning_logs/studies/*/version_*"))) == 4


def test_the_default_workers_share_out_the_cores_and_mistakes_are_one_line(tmp_path) -> None:
    slots = placements(None, None, 1)
    assert len(slots) <= cores() and all(p.threads == max(1, cores() // len(slots)) for p in slots)
    assert [p.threads for p in placements(3, 2, 1)] == [2, 2, 2]
    study_file(tmp_path)
    for workers in ("0", "-1e3"):  # -1e3 said "expected one argument": argparse took it for an option
        refused = study(tmp_path, "--workers", workers)
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            f"lab-cnn: error: argument --workers: '{workers}' is not allowed; use a whole number >= 1"
        )
    assert not (tmp_path / "reports").exists()


@pytest.mark.long  # a 2-node Ray cluster started and a study on it (about 140 s here)
def test_a_two_node_ray_cluster_makes_the_runs_of_local_workers_and_the_driver_gets_their_folders(tmp_path) -> None:
    from ray.cluster_utils import Cluster  # the dev extra installs Ray (lab-cnn[cluster])

    on_ray, local = tmp_path / "ray", tmp_path / "local"
    for folder in (on_ray, local):
        folder.mkdir()
        study_file(folder)
    one_cpu = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={**one_cpu, "include_dashboard": False})
    try:
        cluster.add_node(**one_cpu)
        cluster.wait_for_nodes()
        address = cluster.address
        result = study(on_ray, "--ray", address, "--threads-per-run", "1")
    finally:
        cluster.shutdown()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"3 run(s) to make on the Ray cluster at {address}: 2 node(s), 2 CPU(s)" in result.stdout
    assert len(set(re.findall(r": done in \d+ s on node (\w+) ", result.stdout))) == 2  # both nodes made runs
    made_here = study(local, "--workers", "2", "--threads-per-run", "1")
    assert made_here.returncode == 0, made_here.stdout + made_here.stderr
    assert numbers(on_ray) == numbers(local)
    for key, record in json.loads((on_ray / REPORT / "runs.json").read_text()).items():
        run_dir = next(on_ray.glob(f"lightning_logs/**/{key}/version_0"))  # the run folder, on the driver
        assert json.loads((run_dir / "study_run.json").read_text()) == record
        assert list(run_dir.glob("events.out.tfevents.*"))
        assert "$ python -m " in (on_ray / REPORT / "logs" / f"{key}.log").read_text()
    assert (on_ray / "models" / "studies").is_dir()  # the Keras model, beside its record


@pytest.mark.long  # a 3-node Ray cluster, a node taken away mid-run (about 100 s here)
def test_a_ray_node_that_goes_away_mid_run_costs_no_run_and_makes_none_twice(tmp_path) -> None:
    import psutil
    from ray.cluster_utils import Cluster

    study_file(tmp_path, keras=False, epochs=3)
    head = {"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False}  # the runs go to the others
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        nodes = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
        cluster.wait_for_nodes()
        raylets = {node.all_processes["raylet"][0].process.pid: node for node in nodes}
        args = command("--limit-batches", "100", "--ray", cluster.address, "--threads-per-run", "1")
        process = subprocess.Popen(args, cwd=tmp_path, env=QUIET, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not (going := [(t, r) for r in raylets for t in descendants(r) if "ray::task" in t.name()]):
            assert process.poll() is None and time.monotonic() < deadline, "no Ray task started"
            time.sleep(0.2)
        task, raylet = going[0]
        time.sleep(2)  # into the run's training
        assert task.is_running(), "the run ended before its node was taken away"
        cluster.remove_node(raylets[raylet], allow_graceful=False)  # its raylet and workers killed: the node is gone
        psutil.wait_procs([task], timeout=60)  # a worker whose raylet died ends itself
        stdout, _ = process.communicate(timeout=600)
    finally:
        cluster.shutdown()
    assert process.returncode == 0, stdout
    assert stdout.count(": done in ") == 2 and f"pid {task.pid})" not in stdout  # made again, on the other node
    report = Path("reports") / "tiny-3epochs-100batches"
    runs = json.loads((tmp_path / report / "runs.json").read_text())
    assert len(runs) == 2 and all(len(run["train_acc"]) == 3 for run in runs.values())
    folders = sorted(tmp_path.glob("lightning_logs/studies/*/version_*"))
    assert len(folders) == 2 and all((f / "study_run.json").is_file() for f in folders)
    assert "Failed runs" not in (tmp_path / report / "report.md").read_text()


def test_a_study_killed_outright_ends_its_runs_and_its_server_with_it(tmp_path) -> None:
    """SIGKILL of ``lab-cnn study`` while a run trains: the run's process and the warm server end within
    seconds (no run goes on to its end, to clash with the same command's rerun)."""
    import psutil

    study_file(tmp_path, keras=False)
    process = subprocess.Popen(
        command("--workers", "1"), cwd=tmp_path, env=QUIET, stdout=subprocess.PIPE, text=True
    )  # a whole epoch: more than the seconds allowed below
    assert process.stdout is not None
    while ": running " not in (line := process.stdout.readline()):
        assert line, "the study ended before a run started"
    worker = int(re.search(r"\(pid (\d+)\)", line).group(1))
    study_processes = descendants(process.pid)
    assert worker in {p.pid for p in study_processes} and len(study_processes) >= 2  # the server and the run
    process.kill()
    process.wait()
    _, alive = psutil.wait_procs(study_processes, timeout=10)
    assert not alive, [p.cmdline()[:3] for p in alive]


def descendants(pid: int) -> list:
    """A process's children and theirs (psutil.Process)."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def loopback(ip: str) -> bool:
    """127.0.0.1 and ::1, and 127.0.0.1 as an IPv6 socket shows it (::ffff:127.0.0.1)."""
    address = ipaddress.ip_address(ip)
    return address.is_loopback or getattr(address, "ipv4_mapped", None) is not None and address.ipv4_mapped.is_loopback


@pytest.mark.long  # a private Ray cluster started, a study on it, a task killed (54 s in the suite)
def test_ray_local_listens_on_127_0_0_1_only_starts_no_dashboard_and_retries_a_killed_task(tmp_path) -> None:
    import psutil

    study_file(tmp_path, keras=False)
    process = subprocess.Popen(
        command("--limit-batches", "3", "--ray", "local"), cwd=tmp_path, env=QUIET, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not (tasks := [p for p in descendants(process.pid) if "ray::task" in " ".join(p.cmdline())]):  # runs going
        assert process.poll() is None and time.monotonic() < deadline, "no Ray task started"
        time.sleep(0.2)
    listening = {
        (c.laddr.ip, c.laddr.port, p.name())
        for p in descendants(process.pid)
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    dashboards = [p.cmdline() for p in descendants(process.pid) if any("dashboard.py" in a for a in p.cmdline())]
    tasks[0].kill()  # SIGKILL, mid-run: Ray makes the task again
    stdout, _ = process.communicate(timeout=300)
    assert process.returncode == 0, stdout
    assert listening and all(loopback(ip) for ip, _, _ in listening), listening
    # include_dashboard=False: Ray's head process runs without its web server (--minimal), nothing on 8265
    assert all("--minimal" in argv for argv in dashboards) and 8265 not in {port for _, port, _ in listening}
    assert stdout.count(": done in ") == 2 and f"pid {tasks[0].pid})" not in stdout
    runs = json.loads(next(tmp_path.glob("reports/*/runs.json")).read_text())
    assert len(runs) == 2 and len(list(tmp_path.glob("lightning_logs/studies/*/version_*"))) == 2


@pytest.mark.long  # a study as a process with -X importtime (most of the 29 s this test and the next took as one)
def test_a_local_study_does_not_import_ray(tmp_path) -> None:
    study_file(tmp_path, keras=False)
    local = subprocess.run(
        [sys.executable, "-X", "importtime", *command("--workers", "1", "--limit-batches", "1")[1:]],
        cwd=tmp_path,
        env=QUIET,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert local.returncode == 0, local.stderr[-2000:]
    assert "| lab_cnn.studies.workers" in local.stderr and not re.search(r"\|\s+ray$", local.stderr, re.M)


def test_without_ray_and_without_a_head_node_ray_is_one_line(tmp_path) -> None:
    study_file(tmp_path, keras=False)
    without = "import sys; sys.modules['ray'] = None; from lab_cnn.cli import main; main(sys.argv[1:])"
    missing = subprocess.run(
        [sys.executable, "-c", without, *command("--ray", "local")[3:]],
        cwd=tmp_path,
        env=QUIET,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"lab-cnn: error: {MISSING}"
    nobody = subprocess.run(command("--ray", "127.0.0.1:1"), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert nobody.returncode == 2 and nobody.stderr.strip() == (
        "lab-cnn: error: --ray 127.0.0.1:1: no Ray head node there (Connection refused); start one with "
        "`ray start --head`, or use --ray local"
    )
    for address in ("127.0.0.1", "127.0.0.1:²", ":6379"):  # no port, a digit int() refuses, no host
        with pytest.raises(UserError, match=f"^--ray {re.escape(repr(address))} is not allowed; give auto, local or"):
            reachable(address)
