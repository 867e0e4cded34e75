"""The commands besides LightningCLI's: ``data``, ``summary``, ``study``, ``report`` and ``explore``. None
imports Lightning unless it needs it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from lab_cnn import mnist
from lab_cnn.errors import ArgumentParser, UserError
from lab_cnn.validators import whole_number


def data_command(argv: list[str]) -> None:
    parser = ArgumentParser(
        prog="lab-cnn data",
        description="Fetch the four raw MNIST files into DATA_DIR/MNIST/raw and verify each by its official MD5.",
    )
    parser.add_argument("--data-dir", default="data", help="where to put MNIST/raw (default: data)")
    raw = mnist.fetch(parser.parse_args(argv).data_dir)
    for name, md5 in mnist.MD5.items():
        print(f"{raw / name}  MD5 {md5}  OK")


def summary_command(argv: list[str]) -> None:
    """``lab-cnn summary``: the model a config describes, layer by layer, built by the same parser and from the
    same arguments as ``fit`` builds it (lab_cnn.lightning_cli); no data and no Trainer are needed."""
    if any(a in ("-h", "--help") for a in argv):
        print(SUMMARY_HELP)
        return
    from lab_cnn.lightning_cli import lightning_cli
    from lab_cnn.summary import format_summary

    print(format_summary(lightning_cli(argv, run=False, prog="lab-cnn summary").model.net))


SUMMARY_HELP = """usage: lab-cnn summary --config CONFIG [--config CONFIG ...] [--model.KEY VALUE ...]

Print each layer's output shape and parameter count of a config's model, as Keras' model.summary() does
(BatchNorm statistics counted), without data. It takes fit's options (lab-cnn fit --help); the model is
built from them as fit builds it, e.g. lab-cnn summary --config configs/baseline.yaml --model.kernel_size 3"""


def study_command(argv: list[str]) -> None:
    from lab_cnn.studies.records import check_folder, read_runs
    from lab_cnn.studies.report import write_report
    from lab_cnn.studies.study import Settings, load_study, run_study

    parser = ArgumentParser(
        prog="lab-cnn study",
        description="Run every variant of a study (configs/studies/*.yaml), several at once, each in a process of its "
        "own, record each run's "
        "numbers in reports/<study>/runs.json, and write reports/<study>/report.md with the lab's tables and PNG "
        "plots. "
        "Runs recorded before are not rerun; Ctrl-C stops, and the same command goes on where it stopped.",
    )
    parser.add_argument("study", help="a study file, e.g. configs/studies/lab.yaml")
    parser.add_argument(
        "--seeds",
        type=whole_number,
        default=1,
        help="run each variant with seeds 1..N: mean, standard deviation and a t-test per conclusion (default 1)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="rerun variants that finished before; replace a report folder of another study or other settings",
    )
    parser.add_argument(
        "--epochs",
        type=whole_number,
        default=None,
        help="training epochs of every variant (default: the study file's, else 5)",
    )
    parser.add_argument(
        "--limit-batches",
        type=whole_number,
        default=None,
        help="train (and for lab-cnn, validate and test) on N batches only: quick checks",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="report folder (default reports/<study>, or reports/<study>-<settings> "
        "when --epochs or --limit-batches change the study file's settings)",
    )
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (default data)")
    parallel_options(parser)
    args = parser.parse_args(argv)
    study = load_study(args.study)
    own = study.settings
    study.settings = Settings(args.epochs or own.epochs, args.limit_batches)
    folder = Path(args.out) if args.out else study.folder(shortened=study.settings != own)
    check_folder(folder, study, args.force)  # a folder refused before anything is fetched or run
    runs_on = engine(args)  # a mistake in its options is told before anything is fetched
    runs_on.prepare(study, args.study, args.data_dir)  # and one in a variant's options
    mnist.ensure(args.data_dir)  # fetched once here, not by every run at once
    failures = run_study(study, args.seeds, args.force, args.data_dir, folder, runs_on)
    if read_runs(folder):  # a report of what finished, the failures listed in it
        write_report(folder)
        print(f"Report: {folder / 'report.md'} (plots beside it)")
    if failures:
        raise UserError(f"{len(failures)} runs failed ({'; '.join(failures)}); their output is in {folder / 'logs'}")


def parallel_options(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=whole_number,
        default=None,
        help="runs at once on this machine (default: one per core, as memory allows, on a CPU machine; "
        "--runs-per-gpu per GPU on a GPU machine); printed at start",
    )
    parser.add_argument(
        "--threads-per-run",
        type=whole_number,
        default=None,
        help="CPU threads of each run (default: the cores shared out among the workers); recorded with each run, "
        "as the threads change a run's numbers in their last digits",
    )
    parser.add_argument(
        "--runs-per-gpu",
        type=whole_number,
        default=1,
        help="runs sharing each GPU at once (default 1); a Keras run takes only the GPU memory it uses",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="make the runs as tasks of a Ray cluster instead: auto (the one this machine is part of), HOST:PORT "
        "(its head), or local (a private one started here, on 127.0.0.1 only, without a dashboard); Ray has no "
        "authentication: use it on a private network only (docs/studies.md)",
    )


def engine(args: argparse.Namespace) -> Any:
    """Where the runs are made: this machine's workers (lab_cnn.studies.workers) or a Ray cluster
    (lab_cnn.studies.cluster, which alone imports Ray)."""
    if args.ray is None:
        from lab_cnn.studies.workers import LocalWorkers, placements

        return LocalWorkers(placements(args.workers, args.threads_per_run, args.runs_per_gpu))
    if args.workers is not None:
        raise UserError(
            "--workers: with --ray, Ray decides how many runs go at once, from each run's --threads-per-run"
        )
    from lab_cnn.studies.cluster import RayCluster

    return RayCluster(args.ray, args.threads_per_run, args.runs_per_gpu)


def report_command(argv: list[str]) -> None:
    from lab_cnn.studies.records import SPEC
    from lab_cnn.studies.report import write_report

    parser = ArgumentParser(
        prog="lab-cnn report",
        description="Rebuild a study's report.md and plots from its study.yaml and runs.json (both committed with it).",
    )
    parser.add_argument("folder", help="a study's report folder, e.g. reports/lab")
    folder = Path(parser.parse_args(argv).folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: not a folder; give a study's report folder, e.g. reports/lab")
    if not os.path.lexists(folder / SPEC):  # else read_spec says what is wrong with it (a folder, a broken link)
        raise UserError(f"{folder}: no {SPEC} here; run `lab-cnn study STUDY.yaml` first")
    write_report(folder)
    print(f"Report: {folder / 'report.md'} (plots beside it)")


def explore_command(argv: list[str]) -> None:
    from lab_cnn.explore import explore_command

    explore_command(argv)
