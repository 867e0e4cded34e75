"""``make bench`` runs its cases for real and reports them; its speed goals are measured there, not here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab_cnn.studies.workers import cores
from tests.helpers import DATA_DIR, REPO


@pytest.mark.long  # the benchmark's cases (a) and (b) on 20 batches, as a process (35 s in the suite)
def test_bench_times_lab_cnn_fit_and_the_plain_loop_and_reports_the_goals(tmp_path) -> None:
    out, md = tmp_path / "results.json", tmp_path / "RESULTS.md"
    logs_before = set((REPO / "lightning_logs").glob("bench/*"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "--only",
            "a,b",
            "--limit-batches",
            "20",
            "--data-dir",
            str(DATA_DIR),
            "--json",
            str(out),
            "--results-md",
            str(md),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"a", "b"}
    for case in results.values():
        assert case["images"] == 20 * 128 and 0 < case["loop_s"] < case["process_s"]
        assert (
            0.1 < case["test_acc"] < 0.8 and case["peak_rss_mb"] > 100
        )  # 20 batches of the lab net: better than chance
    table = md.read_text()
    assert "| training loop (a) / (b) |" in table and "| peak RSS of (a), MB |" in table
    assert "| training loop (d) / (a) port | n/a |" in table  # cases not run are not guessed
    assert set((REPO / "lightning_logs").glob("bench/*")) == logs_before  # the runs leave no logs behind


@pytest.mark.long
def test_bench_study_times_both_worker_counts_and_what_the_machine_allows(tmp_path) -> None:
    out, md = tmp_path / "results.json", tmp_path / "RESULTS.md"
    argv = ["--seeds", "1", "--limit-batches", "3", "--data-dir", str(DATA_DIR), "--json", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_study", *argv, "--results-md", str(md)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    for name, runs in (("lab-cnn", 2), ("Keras", 1)):
        one, two = results[f"{name}: --workers 1"], results[f"{name}: --workers 2"]
        assert one["runs"] == two["runs"] == runs
        assert one["threads"] == [cores()] and two["threads"] == [max(1, cores() // 2)]  # the study's defaults
        assert 0 < one["training_s"] < one["wall_s"] and 0 < two["overhead_s"]
    plain = results["plain_loop_twice"]
    assert 0 < plain["at_once_s"] and 0 < plain["one_after_the_other_s"]
    assert plain["threads"] == [cores(), max(1, cores() // 2)]
    table = md.read_text()
    assert "| wall time --workers 2 / --workers 1, both studies |" in table
    assert "| what the machine allows: the plain training loop (b), twice |" in table
