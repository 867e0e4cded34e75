"""``lab-cnn study``: run every variant of the lab's comparisons, several at once (each in a process of its
own, :mod:`lab_cnn.studies.workers`), and keep what each run measured.

A study file (``configs/studies/*.yaml``) names comparisons; each lists variants, and a variant is a
``lab-cnn fit`` config with optional overrides (``config``, ``args``) or a ``keras-parity`` run
(``keras: {activation, conv_layers}``). Runs log under ``lightning_logs/studies/`` (lab-cnn) and
``lightning_logs/keras/studies/`` (Keras), one folder per distinct run. When a run finishes, its
numbers are read back from its event files (TensorBoard's reader) and added to the report folder's
``runs.json``, which is committed with the report: the report (:mod:`lab_cnn.studies.report`) is built from
``study.yaml`` and ``runs.json`` alone, and a run recorded there is never run again unless ``--force``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from lab_cnn.config import read_yaml
from lab_cnn.documented import documented_at
from lab_cnn.errors import UserError
from lab_cnn.machine import describe_machine, package_versions
from lab_cnn.runs import KERAS_LOG_DIR, LOG_DIR, checked_run_name, run_versions
from lab_cnn.studies.records import (
    FRAMEWORKS,
    RUNS,
    SPEC,
    check_folder,
    checked_run,
    documented_for,
    documented_path,
    file_name,
    read_json,
    read_runs,
    replace_file,
    text,
)
from lab_cnn.validators import positive_int

if TYPE_CHECKING:  # workers.py imports this module
    from lab_cnn.studies.workers import Placement

REPORTS = Path("reports")
DONE = "study_run.json"  # in a run's log folder once it finished
RUN_TAGS = ("train/acc", "train/loss", "test/acc", "test/loss", "test/images", "lr-SGD", "model/params")


@dataclass
class Variant:
    """One named variant of a comparison: a lab-cnn config with overrides, or a keras-parity run."""

    name: str
    config: str | None = None
    args: list[str] = field(default_factory=list)
    keras: dict[str, Any] | None = None
    documented: str | None = (
        None  # where its lab numbers are in documented_results.yaml, e.g. keras.activation_study.relu
    )

    def lab_numbers(self) -> dict[str, Any] | None:
        """The lab's numbers for this variant, or None."""
        return documented_at(self.documented) if self.documented else None

    def describe(self) -> str:
        """A readable name of what runs: the config and overrides, or the Keras settings."""
        if self.keras is not None:
            return "keras " + " ".join(f"{k}={v}" for k, v in sorted(self.keras.items()))
        return " ".join([f"lab-cnn fit --config {self.config}", *self.args])

    def key(self, settings: Settings, seed: int) -> str:
        """The run's name: readable, plus a hash of everything that changes the run (the config's
        content too, not its comments), so an edited config or another setting is another run."""
        spec = {
            "config": read_yaml(Path(self.config)) if self.config else None,
            "args": self.args,
            "keras": self.keras,
            "epochs": settings.epochs,
            "limit_batches": settings.limit_batches,
            "seed": seed,
        }
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
        if self.keras is not None:
            slug = "keras-" + "-".join(f"{v}" for _, v in sorted(self.keras.items()))
        else:
            slug = "-".join(
                [Path(str(self.config)).stem, *(a.lstrip("-").replace("model.init_args.", "") for a in self.args)]
            )
        return f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', slug)[:60]}-s{seed}-{digest}"

    def run_root(self, key: str) -> Path:
        return KERAS_LOG_DIR / "studies" / key if self.keras is not None else LOG_DIR / "studies" / key


@dataclass
class Comparison:
    """Variants compared in one table and one figure, with the lab's conclusion about them."""

    name: str
    title: str
    framework: str  # pytorch or keras: how the lab counted its numbers
    variants: list[Variant]
    claim: str | None = None
    expect_best: str | None = None


@dataclass(frozen=True)
class Settings:
    """What every run of a study shares: epochs, and batches per stage for quick checks."""

    epochs: int
    limit_batches: int | None = None


@dataclass
class Study:
    name: str
    settings: Settings
    comparisons: list[Comparison]

    def folder(self, shortened: bool) -> Path:
        """``reports/<name>``; a study run with other settings than its file's gets a folder of its own."""
        if not shortened:
            return REPORTS / self.name
        limit = f"-{self.settings.limit_batches}batches" if self.settings.limit_batches else ""
        return REPORTS / f"{self.name}-{self.settings.epochs}epochs{limit}"


def load_study(path: str | Path, including: tuple[Path, ...] = ()) -> Study:
    """A study file with its ``include``s, checked; every mistake is a UserError naming the file."""
    path = Path(path)
    if path.resolve() in including:
        raise UserError(f"{path}: includes itself (through {', '.join(p.name for p in including)})")
    spec = read_yaml(path, what="study file")
    only_keys(str(path), spec, ("name", "epochs", "include", "comparisons"))
    comparisons: dict[str, Comparison] = {}
    for included in typed(f"{path}: include", spec.get("include", []), list):
        for c in load_study(
            path.parent / typed(f"{path}: include", included, str), (*including, path.resolve())
        ).comparisons:
            comparisons.setdefault(c.name, c)
    for name, c in typed(f"{path}: comparisons", spec.get("comparisons") or {}, dict).items():
        comparisons[name] = comparison(path, file_name(f"{path}: comparisons.{name}", name), c)
    if not comparisons:
        raise UserError(f"{path}: no comparisons; list them under 'comparisons:' or 'include:' other study files")
    epochs = positive_int(f"{path}: epochs", spec.get("epochs", 5))
    name = study_name(f"{path}: name", spec.get("name", path.stem))
    return Study(name=name, settings=Settings(epochs), comparisons=list(comparisons.values()))


def study_name(where: str, value: object) -> str:
    """A study's name: one folder name, its report's in reports/ (not a folder inside another study's report)."""
    name = checked_run_name(where, text(where, value), inside=REPORTS, reserved=())
    if "/" in name:
        raise UserError(f"{where}: {name!r} is not allowed; use one folder name inside {REPORTS}/, such as my_study")
    return name


def only_keys(where: str, spec: dict[str, Any], keys: tuple[str, ...]) -> None:
    """A key of no meaning in a study file (a typo, ``epoch:``) refused, where it would be passed over silently."""
    unknown = sorted(map(str, set(spec) - set(keys)))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; use {', '.join(keys[:-1])} or {keys[-1]}")


def typed(where: str, value: Any, kind: type) -> Any:
    """``value`` if it is a ``kind`` (a list, a mapping, a text), else a UserError naming ``where``."""
    if not isinstance(value, kind):
        words = {list: "a list", dict: "keys and values", str: "a text"}[kind]  # type: ignore[index]
        raise UserError(f"{where}: {value!r} is not allowed; give {words}")
    return value


def comparison(path: Path, name: str, spec: Any) -> Comparison:
    where = f"{path}: comparisons.{name}"
    spec = typed(where, spec, dict)
    only_keys(where, spec, ("title", "framework", "claim", "expect_best", "variants"))
    if spec.get("framework") not in FRAMEWORKS:
        raise UserError(f"{where}.framework: {spec.get('framework')!r} is not allowed; use pytorch or keras")
    variants = []
    for vname, v in typed(f"{where}.variants", spec.get("variants") or {}, dict).items():
        at = f"{where}.variants.{text(f'{where}.variants.{vname}', vname)}"
        only_keys(at, typed(at, v, dict), ("config", "args", "keras", "documented"))
        if ("config" in v) == ("keras" in v):
            raise UserError(f"{at}: give either 'config' (lab-cnn) or 'keras' (keras-parity)")
        if "config" in v and not Path(typed(f"{at}.config", v["config"], str)).is_file():
            raise UserError(f"{at}.config: {v['config']} not found (paths are relative to the current folder)")
        variant = Variant(
            name=vname,
            config=v.get("config"),
            args=[str(a) for a in typed(f"{at}.args", v.get("args", []), list)],
            keras=typed(f"{at}.keras", v["keras"], dict) if "keras" in v else None,
            documented=typed(f"{at}.documented", v["documented"], str) if "documented" in v else None,
        )
        if variant.documented is not None:
            documented_path(f"{at}.documented", variant.documented)
            documented_for(f"{at}.documented", variant.documented, spec["framework"])
        variants.append(variant)
    if not variants:
        raise UserError(f"{where}: no variants")
    expect = spec.get("expect_best")
    if expect is not None and expect not in {v.name for v in variants}:
        raise UserError(f"{where}.expect_best: {expect!r} is not one of its variants")
    return Comparison(
        name=name,
        title=text(f"{where}.title", spec.get("title", name)),
        framework=spec["framework"],
        variants=variants,
        claim=None if spec.get("claim") is None else text(f"{where}.claim", spec["claim"]),
        expect_best=expect,
    )


def keras_model_path(key: str) -> Path:
    return Path("models") / "studies" / f"{key}.keras"


def commands(variant: Variant, key: str, version: int, settings: Settings, seed: int, data_dir: str) -> list[list[str]]:
    """The processes of one run, as a user would type them."""
    limit = settings.limit_batches
    if variant.keras is None:
        limits = [f"--trainer.limit_{stage}_batches={limit}" for stage in ("train", "val", "test")] if limit else []
        return [
            [
                sys.executable,
                "-m",
                "lab_cnn",
                "fit",
                "--config",
                str(variant.config),
                *variant.args,
                "--name",
                f"studies/{key}",
                f"--seed_everything={seed}",
                f"--data.seed={seed}",
                f"--trainer.max_epochs={settings.epochs}",
                f"--data.data_dir={data_dir}",
                "--inspect=false",
                "--trainer.enable_progress_bar=false",
                *limits,
            ]
        ]
    common = [
        "--model_path",
        str(keras_model_path(key)),
        "--run",
        f"studies/{key}/version_{version}",
        "--data-dir",
        data_dir,
    ]
    keras_settings = [f"--{k.replace('_', '-')}={v}" for k, v in sorted(variant.keras.items())]
    # --overwrite: the model file is the study's own, replaced when a run is made again (--force, a failed try)
    train = [
        "--mode",
        "train",
        f"--epochs={settings.epochs}",
        f"--seed={seed}",
        *keras_settings,
        *common,
        "--overwrite",
    ]
    return [
        [sys.executable, "-m", "keras_parity", *train, *([f"--limit-batches={limit}"] if limit else [])],
        [sys.executable, "-m", "keras_parity", "--mode", "test", *common],
    ]


def check_commands(study: Study, path: str, data_dir: str) -> None:
    """Every variant's options read as its run will read them, before any run starts: a misspelled key in
    ``args`` or ``keras`` is one line naming the variant, not a failure of each of its runs (the model and
    data module are built, not trained; a Trainer's own checks come with its run); so is an option the study
    sets for every run (the seed, the epochs), where one of the two would be dropped silently."""
    from lab_cnn.api import raise_as_user_error
    from lab_cnn.lightning_cli import lightning_cli

    for c in study.comparisons:
        for v in c.variants:
            bare = replace(v, args=[], keras=None if v.keras is None else {})
            study_sets = {a.partition("=")[0] for argv in commands(bare, "check", 0, study.settings, 1, data_dir)
                          for a in argv if a.startswith("--")} - {"--config"}  # fmt: skip
            train = commands(v, "check", 0, study.settings, 1, data_dir)[0]
            try:
                if v.keras is None:
                    for option in (a.partition("=")[0] for a in v.args if a.startswith("-")):
                        if option in study_sets:
                            raise UserError(f"args: {option} is the study's to set for every run; leave it out")
                        inside = sorted(o.removeprefix(option + ".") for o in study_sets if o.startswith(option + "."))
                        if inside:  # --trainer={max_epochs: 5} would set trainer.max_epochs, and be dropped
                            raise UserError(
                                f"args: {option} gives the whole of {option[2:]}, which holds the study's "
                                f"{', '.join(inside)}; give its other keys one by one ({option}.KEY)"
                            )
                    try:
                        with contextlib.redirect_stdout(io.StringIO()):  # what --print_config, --help would print
                            lightning_cli(train[train.index("fit") + 1 :], run=False)
                    except SystemExit:  # --help, --print_config: the command prints and ends, and no run is made
                        raise UserError(f"args: {' '.join(v.args)} ends the command instead of making a run") from None
                    except Exception as e:  # noqa: BLE001 - a mistake as the command words it; a bug re-raised
                        raise_as_user_error(e)
                else:
                    from keras_parity.cli import parser

                    keras = parser()
                    settings = {a.dest for a in keras._actions} - {"help"}
                    settings -= {o.removeprefix("--").replace("-", "_") for o in study_sets}
                    for key in sorted(v.keras, key=str):
                        if key not in settings:
                            raise UserError(
                                f"keras.{key}: not a setting of a variant; use {', '.join(sorted(settings))}"
                            )
                    try:
                        given = keras.parse_args(train[3:])
                    except UserError as e:  # keras-parity's words name its option; the study file, the setting
                        option, _, why = str(e).removeprefix("argument ").partition(": ")  # --a/--b: why
                        named = {o: f"keras.{a.dest}" for a in keras._actions for o in a.option_strings}
                        setting = named.get(option.split("/")[0])
                        raise UserError(f"{setting}: {why}" if setting else str(e)) from None
                    from keras_parity.nets import KerasCNN  # the port: the Keras net's geometry, checked in torch

                    KerasCNN(activation=given.activation, conv_layers=given.conv_layers)
            except UserError as e:
                raise UserError(f"{path}: comparisons.{c.name}.variants.{v.name}: {e}") from None


def read_run(run_dir: Path) -> dict[str, Any]:
    """The numbers a finished run logged, read with TensorBoard's own reader; accuracies in percent.
    Training time: from the first ``lr-SGD`` (logged as each epoch starts) to the last ``train/acc``."""
    from lab_cnn.compat import tensorboard_without_tensorflow

    tensorboard_without_tensorflow()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator, ScalarEvent
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars, tensors = set(events.Tags()["scalars"]), set(events.Tags()["tensors"])

    def series(tag: str) -> list[ScalarEvent]:
        """A tag's values by step: Lightning writes scalars, TensorFlow (Keras) scalar tensors."""
        if tag in scalars:
            found = events.Scalars(tag)
        else:
            found = [
                ScalarEvent(e.wall_time, e.step, tensor_util.make_ndarray(e.tensor_proto).item())
                for e in events.Tensors(tag)
            ]
        return sorted(found, key=lambda e: e.step)

    missing = set(RUN_TAGS) - scalars - tensors
    if missing:
        raise UserError(f"{run_dir}: no {', '.join(sorted(missing))} in its event files")
    return {
        "train_acc": [100 * e.value for e in series("train/acc")],
        "train_loss": [e.value for e in series("train/loss")],
        "test_acc": 100 * series("test/acc")[-1].value,
        "test_loss": series("test/loss")[-1].value,
        "test_images": int(series("test/images")[-1].value),
        "params": int(series("model/params")[-1].value),
        "seconds": series("train/acc")[-1].wall_time - series("lr-SGD")[0].wall_time,
    }


@dataclass
class Job:
    """One run of a study to make: a variant and seed, its key, the progress line's label and its log."""

    label: str  # [i/N] comparison/variant seed S
    name: str  # comparison/variant seed S, as the failures list it
    variant: Variant
    key: str
    seed: int
    log: Path

    @property
    def program(self) -> str:
        return "keras-parity" if self.variant.keras is not None else "lab-cnn"

    def discard(self) -> None:
        """Remove what an unfinished run of this key left (its run folders without a record, its model file
        and log): the same command makes it again, and nothing of it is counted."""
        for version in run_versions(self.variant.run_root(self.key)).values():
            if not (version / DONE).is_file():
                shutil.rmtree(version, ignore_errors=True)
        keras_model_path(self.key).unlink(missing_ok=True)
        self.log.unlink(missing_ok=True)


def run_in_process(argv: list[str]) -> None:
    """A command of :func:`commands` (``python -m MODULE ARGS``) called in this process, through the
    functions the command calls; a mistake raises UserError."""
    module, *args = argv[2:]
    if module == "lab_cnn":
        from lab_cnn.api import raise_as_user_error
        from lab_cnn.lightning_cli import lightning_cli

        try:
            lightning_cli(args)
        except Exception as e:  # noqa: BLE001 - a mistake as the command words it; raise_as_user_error re-raises a bug
            raise_as_user_error(e)
        return
    from keras_parity import cli

    options = cli.parser().parse_args(args)
    {"train": cli.train, "test": cli.test}[options.mode](options)


def run_variant(job: Job, settings: Settings, data_dir: str, placement: Placement) -> dict[str, Any]:
    """Makes one run in this process (a worker's: its output goes to the run's log already) and returns
    what it measured, with the threads and device it had (``placement``); its record is written in its run
    folder last, so a folder without one is an unfinished run."""
    variant, key, seed = job.variant, job.key, job.seed
    root = variant.run_root(key)
    version = max(run_versions(root), default=-1) + 1
    started = time.time()
    for argv in commands(variant, key, version, settings, seed, data_dir):
        print("$ python " + " ".join(argv[1:]), flush=True)
        run_in_process(argv)
    run_dir = root / f"version_{version}"
    record = {
        "key": key,
        "seed": seed,
        "epochs": settings.epochs,
        "limit_batches": settings.limit_batches,
        "run": variant.describe(),
        **read_run(run_dir),
        "process_seconds": round(time.time() - started, 1),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "versions": package_versions(),
        "threads": placement.threads,
        "device": placement.device,
    }
    (run_dir / DONE).write_text(json.dumps(record, indent=1))
    return record


def finished_run(variant: Variant, key: str) -> dict[str, Any] | None:
    """The record of a run of ``key`` that finished before in ``lightning_logs/``, or None."""
    versions = run_versions(variant.run_root(key))
    done = [versions[n] / DONE for n in sorted(versions) if (versions[n] / DONE).is_file()]
    return checked_run(str(done[-1]), key, read_json(done[-1])) if done else None  # a file one may have edited


def write_runs(folder: Path, runs: dict[str, dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    replace_file(folder / RUNS, json.dumps(dict(sorted(runs.items())), indent=1) + "\n")


def plan(study: Study, seeds: int, force: bool, folder: Path, runs: dict[str, dict[str, Any]]) -> list[Job]:
    """The runs to make: every variant and seed not recorded yet (in ``runs``, or finished in
    ``lightning_logs/``, which ``runs`` then gets), each key once."""
    planned = [(c, v, seed) for c in study.comparisons for v in c.variants for seed in range(1, seeds + 1)]
    jobs: dict[str, Job] = {}
    for i, (c, v, seed) in enumerate(planned, start=1):
        key = v.key(study.settings, seed)
        label = f"[{i}/{len(planned)}] {c.name}/{v.name} seed {seed}"
        if key in jobs:
            print(f"{label}: the same run as an earlier variant ({key})", flush=True)
            continue
        earlier = None if force else runs.get(key) or finished_run(v, key)
        if earlier:
            runs[key] = earlier
            print(f"{label}: finished before, not rerun ({key}; --force reruns)", flush=True)
            continue
        jobs[key] = Job(label, f"{c.name}/{v.name} seed {seed}", v, key, seed, folder / "logs" / f"{key}.log")
    return list(jobs.values())


class Engine(Protocol):
    """Where a study's runs are made: this machine's workers, or a Ray cluster."""

    workers: int

    def prepare(self, study: Study, path: str, data_dir: str) -> None:
        """Reads every variant's options (:func:`check_commands`, a mistake one line) and gets ready to run."""
        ...

    def run(self, jobs: list[Job], settings: Settings, data_dir: str) -> Generator[Any, None, None]:
        """Makes the jobs, yielding what happens to each (lab_cnn.studies.workers.Event)."""
        ...


class Progress:
    """The study's one progress display: a line per run started and ended, with runs done of all, those
    going, and an estimate of the time left. A run not ended is expected to take as long as the finished runs
    of its variant took on average (here a Keras run takes ten times a lab-cnn run), or of all finished runs
    while none of its variant has finished; of a run going, what is left of that counts."""

    def __init__(self, jobs: list[Job], workers: int) -> None:
        self.total, self.workers, self.done = len(jobs), workers, 0
        self.left = {job.key: job for job in jobs}  # the runs not ended
        self.started: dict[str, float] = {}  # the runs going, by key: when each started
        self.took: dict[str, list[float]] = {}  # the seconds of each run finished, by what ran (Variant.describe)

    def start(self, job: Job, where: str) -> None:
        self.started[job.key] = time.time()
        print(f"{job.label}: running {job.variant.describe()} on {where} (output: {job.log})", flush=True)

    def retried(self, job: Job, why: str) -> None:
        self.started.pop(job.key, None)
        print(f"{job.label}: {why}; made again", flush=True)

    def end(self, job: Job, line: str, finished: bool = True) -> None:
        """``job`` ended, as ``line`` says; a run that failed (``finished`` False) tells nothing of the others."""
        self.done += 1
        seconds = time.time() - self.started.pop(job.key)
        del self.left[job.key]
        if finished:
            self.took.setdefault(job.variant.describe(), []).append(seconds)
        left = self.seconds_left()
        eta = f", about {left / 60:.1f} min left" if left is not None else ""
        print(f"{job.label}: {line} ({self.done}/{self.total} done, {len(self.started)} going{eta})", flush=True)

    def seconds_left(self) -> float | None:
        """The runs not ended, expected as the class says, shared among the workers; None before any estimate."""
        every = [seconds for took in self.took.values() for seconds in took]
        if not self.left or not every:
            return None
        now = time.time()

        def expected(job: Job) -> float:
            like = self.took.get(job.variant.describe(), every)
            return max(sum(like) / len(like) - (now - self.started.get(job.key, now)), 0.0)

        return sum(expected(job) for job in self.left.values()) / min(self.workers, len(self.left))


def run_study(study: Study, seeds: int, force: bool, data_dir: str, folder: Path, engine: Engine) -> list[str]:
    """Makes what is not recorded yet on ``engine``, adding each finished run to ``folder/runs.json`` as it
    finishes, and writes ``folder/study.yaml``; returns the failures, one line each."""
    check_folder(folder, study, force)
    with held(folder):
        return make_runs(study, seeds, force, data_dir, folder, engine)


@contextmanager
def held(folder: Path) -> Iterator[None]:
    """``folder`` this study's alone while it makes runs (a lock on the folder, which goes with the process): a
    second study making runs there at once would make the same runs twice and take the first's runs going for
    what a stopped study left."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder}: another study is making this report's runs now; wait until it ends") from None
        yield
    finally:
        os.close(descriptor)


def make_runs(study: Study, seeds: int, force: bool, data_dir: str, folder: Path, engine: Engine) -> list[str]:
    """:func:`run_study`'s work, in its held folder."""
    runs = read_runs(folder)
    jobs = plan(study, seeds, force, folder, runs)
    for job in jobs:  # what a study stopped without its clean-up (killed, or its machine gone) left of a run
        job.discard()
    failures: list[str] = []
    if jobs:
        print(f"{len(jobs)} run(s) to make on {engine}", flush=True)
    progress = Progress(jobs, engine.workers)
    events = engine.run(jobs, study.settings, data_dir)
    try:
        for event in events:
            job = event.job
            if event.kind == "started":
                progress.start(job, event.where)
            elif event.kind == "retried":
                progress.retried(job, f"{event.where} died ({event.detail})")
            elif event.kind == "failed":
                failures.append(f"{job.name}: {event.detail}")
                progress.end(job, f"FAILED on {event.where}: {event.detail}", finished=False)
            else:
                runs[job.key] = event.detail
                write_runs(folder, runs)
                progress.end(job, f"done in {event.detail['process_seconds']:.0f} s on {event.where}")
    except KeyboardInterrupt:
        kept = f"{len(runs)} finished runs are kept in {folder / RUNS}" if runs else "no run had finished"
        raise KeyboardInterrupt(f"{kept}; the same command goes on from there") from None
    finally:
        events.close()  # the engine stops the runs going and removes what they left
    write_runs(folder, runs)
    previous = read_yaml(folder / SPEC) if (folder / SPEC).is_file() and not force else {}
    seeds = max(seeds, previous.get("seeds", 0))  # new runs add to a report; they never take seeds away
    spec = {
        "name": study.name,
        "epochs": study.settings.epochs,
        "limit_batches": study.settings.limit_batches,
        "seeds": seeds,
        "failures": failures,
        "comparisons": [
            {
                **{k: v for k, v in asdict(c).items() if k != "variants"},
                "variants": [
                    {**asdict(v), "keys": [v.key(study.settings, s) for s in range(1, seeds + 1)]} for v in c.variants
                ],
            }
            for c in study.comparisons
        ],
    }
    replace_file(folder / SPEC, yaml.safe_dump(spec, sort_keys=False))
    return failures
