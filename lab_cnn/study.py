"""``lab-cnn study``: run every variant of the lab's comparisons, each in its own process.

A study file (``configs/studies/*.yaml``) names comparisons; each lists variants, and a variant is a
``lab-cnn fit`` config with optional overrides (``config``, ``args``) or a ``keras-parity`` run
(``keras: {activation, conv_layers}``). Runs log under ``lightning_logs/studies/`` (lab-cnn) and
``lightning_logs/keras/studies/`` (Keras), one folder per distinct run; a finished run leaves
``study_run.json`` beside its event files and is not run again unless ``--force``. The report
(:mod:`lab_cnn.report`) is then built from those folders alone.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from lab_cnn import KERAS_LOG_DIR, LOG_DIR, run_versions
from lab_cnn.documented import documented
from lab_cnn.errors import ArgumentParser, UserError, positive_int, whole_number

REPORTS = Path("reports")
DONE = "study_run.json"
FRAMEWORKS = ("pytorch", "keras")


@dataclass
class Variant:
    """One named variant of a comparison: a lab-cnn config with overrides, or a keras-parity run."""

    name: str
    config: str | None = None
    args: list[str] = field(default_factory=list)
    keras: dict[str, Any] | None = None
    documented: str | None = None  # where its lab numbers are in documented_results.yaml, e.g. keras.activation_study.relu

    def lab_numbers(self) -> dict[str, Any] | None:
        """The lab's numbers for this variant, or None."""
        if not self.documented:
            return None
        numbers: Any = documented()
        for part in self.documented.split("."):
            numbers = numbers[part]
        return numbers

    def describe(self) -> str:
        """A readable name of what runs: the config and overrides, or the Keras settings."""
        if self.keras is not None:
            return "keras " + " ".join(f"{k}={v}" for k, v in sorted(self.keras.items()))
        return " ".join([f"lab-cnn fit --config {self.config}", *self.args])

    def key(self, epochs: int, limit_batches: int | None, seed: int) -> str:
        """The run's folder name: readable, plus a hash of everything that changes the run
        (the config file's text too), so an edited config or another setting is a new run."""
        spec = {
            "config": Path(self.config).read_text() if self.config else None,
            "args": self.args, "keras": self.keras, "epochs": epochs, "limit_batches": limit_batches, "seed": seed,
        }
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
        if self.keras is not None:
            slug = "keras-" + "-".join(f"{v}" for _, v in sorted(self.keras.items()))
        else:
            slug = "-".join([Path(self.config).stem, *(a.lstrip("-").replace("model.init_args.", "") for a in self.args)])
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


@dataclass
class Study:
    name: str
    epochs: int
    comparisons: list[Comparison]


def load_study(path: str | Path) -> Study:
    """A study file with its ``include``s, checked; every mistake is a UserError naming the file."""
    path = Path(path)
    spec = read_yaml(path)
    comparisons: dict[str, Comparison] = {}
    for included in spec.get("include", []):
        for c in load_study(path.parent / included).comparisons:
            comparisons.setdefault(c.name, c)
    for name, c in (spec.get("comparisons") or {}).items():
        comparisons[name] = comparison(path, name, c)
    if not comparisons:
        raise UserError(f"{path}: no comparisons; list them under 'comparisons:' or 'include:' other study files")
    epochs = positive_int(f"{path}: epochs", spec.get("epochs", 5))
    return Study(name=str(spec.get("name", path.stem)), epochs=epochs, comparisons=list(comparisons.values()))


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: study file not found") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a study file is a mapping with 'name', 'epochs' and 'comparisons'")
    return spec


def comparison(path: Path, name: str, spec: dict[str, Any]) -> Comparison:
    where = f"{path}: comparisons.{name}"
    if spec.get("framework") not in FRAMEWORKS:
        raise UserError(f"{where}.framework: {spec.get('framework')!r} is not allowed; use pytorch or keras")
    variants = []
    for vname, v in (spec.get("variants") or {}).items():
        unknown = set(v) - {"config", "args", "keras", "documented"}
        if unknown:
            raise UserError(f"{where}.variants.{vname}: unknown key {sorted(unknown)[0]!r}; use config, args, keras or documented")
        if ("config" in v) == ("keras" in v):
            raise UserError(f"{where}.variants.{vname}: give either 'config' (lab-cnn) or 'keras' (keras-parity)")
        if "config" in v and not Path(v["config"]).is_file():
            raise UserError(f"{where}.variants.{vname}.config: {v['config']} not found (paths are relative to the current folder)")
        variant = Variant(name=vname, config=v.get("config"), args=[str(a) for a in v.get("args", [])],
                          keras=v.get("keras"), documented=v.get("documented"))
        try:
            variant.lab_numbers()
        except (KeyError, TypeError):
            raise UserError(f"{where}.variants.{vname}.documented: {variant.documented!r} is not in documented_results.yaml") from None
        variants.append(variant)
    if len(variants) < 1:
        raise UserError(f"{where}: no variants")
    expect = spec.get("expect_best")
    if expect is not None and expect not in {v.name for v in variants}:
        raise UserError(f"{where}.expect_best: {expect!r} is not one of its variants")
    return Comparison(name=name, title=str(spec.get("title", name)), framework=spec["framework"], variants=variants,
                      claim=spec.get("claim"), expect_best=expect)


def commands(variant: Variant, key: str, version: int, epochs: int, limit: int | None, seed: int, data_dir: str) -> list[list[str]]:
    """The processes of one run, as a user would type them."""
    if variant.keras is None:
        limits = [f"--trainer.limit_{stage}_batches={limit}" for stage in ("train", "val", "test")] if limit else []
        return [[
            sys.executable, "-m", "lab_cnn", "fit", "--config", str(variant.config), *variant.args,
            "--name", f"studies/{key}", f"--seed_everything={seed}", f"--data.seed={seed}",
            f"--trainer.max_epochs={epochs}", f"--data.data_dir={data_dir}", "--inspect=false",
            "--trainer.enable_progress_bar=false", *limits,
        ]]
    common = [
        "--model_path", f"models/studies/{key}.keras", "--run", f"studies/{key}/version_{version}", "--data-dir", data_dir,
    ]
    settings = [f"--{k.replace('_', '-')}={v}" for k, v in sorted(variant.keras.items())]
    train = ["--mode", "train", f"--epochs={epochs}", f"--seed={seed}", *settings, *common]
    return [
        [sys.executable, "-m", "keras_parity", *train, *([f"--limit-batches={limit}"] if limit else [])],
        [sys.executable, "-m", "keras_parity", "--mode", "test", *common],
    ]


def finished_runs(root: Path) -> list[Path]:
    """Folders under ``root`` that hold a finished run, newest last."""
    versions = run_versions(root)
    return [versions[n] for n in sorted(versions) if (versions[n] / DONE).is_file()]


def next_version(root: Path) -> int:
    return max(run_versions(root), default=-1) + 1


def run_variant(variant: Variant, key: str, epochs: int, limit: int | None, seed: int, data_dir: str, log: Path) -> str | None:
    """Runs one variant and seed, its output into ``log``; None when it finished, else the last line of ``log``."""
    root = variant.run_root(key)
    version = next_version(root)
    started = time.time()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        for argv in commands(variant, key, version, epochs, limit, seed, data_dir):
            out.write("$ python " + " ".join(argv[1:]) + "\n")
            out.flush()
            if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                lines = [l for l in log.read_text().splitlines() if l.strip()]
                return lines[-1] if lines else "failed without output"
    run_dir = finished_dir(variant, root, version)
    record = {"variant": asdict(variant), "seed": seed, "epochs": epochs, "limit_batches": limit,
              "seconds": time.time() - started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (run_dir / DONE).write_text(json.dumps(record, indent=1))
    return None


def finished_dir(variant: Variant, root: Path, version: int) -> Path:
    """Where the run just made wrote its events: the Keras run's given folder, or lab-cnn's newest version."""
    if variant.keras is not None:
        return root / f"version_{version}"
    versions = run_versions(root)
    return versions[max(versions)]


def run_study(study: Study, seeds: int, force: bool, limit: int | None, data_dir: str) -> Path:
    """Runs what is not finished yet, then writes the report; returns the report's folder."""
    from lab_cnn.report import machine, write_report

    out = REPORTS / study.name
    planned = [(c, v, seed) for c in study.comparisons for v in c.variants for seed in range(1, seeds + 1)]
    keys_done: set[str] = set()
    failures: dict[str, str] = {}
    started = time.time()
    for i, (c, v, seed) in enumerate(planned, start=1):
        key = v.key(study.epochs, limit, seed)
        label = f"[{i}/{len(planned)}] {c.name}/{v.name} seed {seed}"
        if key in keys_done:
            print(f"{label}: the same run as an earlier variant ({v.run_root(key)})", flush=True)
            continue
        if finished_runs(v.run_root(key)) and not force:
            print(f"{label}: finished before, not rerun ({v.run_root(key)}; --force reruns)", flush=True)
            continue
        log = out / "logs" / f"{key}.log"
        print(f"{label}: running {v.describe()} (output: {log})", flush=True)
        t0 = time.time()
        error = run_variant(v, key, study.epochs, limit, seed, data_dir, log)
        keys_done.add(key)
        if error:
            failures[f"{c.name}/{v.name} seed {seed}"] = error
            print(f"{label}: FAILED after {time.time() - t0:.0f} s: {error}", flush=True)
        else:
            print(f"{label}: done in {time.time() - t0:.0f} s", flush=True)
    spec = {
        "name": study.name, "epochs": study.epochs, "seeds": seeds, "limit_batches": limit,
        "ran": {"finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": round(time.time() - started),
                "machine": machine(), "failures": failures},
        "comparisons": [
            {**{k: v for k, v in asdict(c).items() if k != "variants"},
             "variants": [{**asdict(v), "keys": [v.key(study.epochs, limit, s) for s in range(1, seeds + 1)]} for v in c.variants]}
            for c in study.comparisons
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    write_report(out)
    if failures:
        raise UserError(f"{len(failures)} of {len(planned)} runs failed ({', '.join(failures)}); see {out / 'report.md'} and {out / 'logs'}")
    return out


def study_command(argv: list[str]) -> None:
    parser = ArgumentParser(
        prog="lab-cnn study",
        description="Run every variant of a study (configs/studies/*.yaml), each in its own process, then write "
        "reports/<study>/report.md with the lab's tables and PNG plots. Finished runs are not rerun.",
    )
    parser.add_argument("study", help="a study file, e.g. configs/studies/lab.yaml")
    parser.add_argument("--seeds", type=whole_number, default=1,
                        help="run each variant with seeds 1..N and report mean and standard deviation (default 1)")
    parser.add_argument("--force", action="store_true", help="rerun variants that finished before")
    parser.add_argument("--epochs", type=whole_number, default=None,
                        help="training epochs of every variant (default: the study file's, else 5)")
    parser.add_argument("--limit-batches", type=whole_number, default=None, help="train (and for lab-cnn, validate and test) on N batches only: quick checks")
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw (default data)")
    args = parser.parse_args(argv)
    study = load_study(args.study)
    if args.epochs:
        study.epochs = args.epochs
    from lab_cnn.data import MNISTDataModule

    MNISTDataModule(data_dir=args.data_dir).prepare_data()  # fetched once here, not by every run at once
    out = run_study(study, args.seeds, args.force, args.limit_batches, args.data_dir)
    print(f"Report: {out / 'report.md'} (plots beside it)")


def report_command(argv: list[str]) -> None:
    parser = ArgumentParser(
        prog="lab-cnn report",
        description="Rebuild a study's report.md and plots from its study.yaml and the runs' event files in lightning_logs/.",
    )
    parser.add_argument("folder", help="a study's report folder, e.g. reports/lab")
    folder = Path(parser.parse_args(argv).folder)
    if not (folder / "study.yaml").is_file():
        raise UserError(f"{folder}: no study.yaml here; run `lab-cnn study STUDY.yaml` first")
    from lab_cnn.report import write_report

    write_report(folder)
    print(f"Report: {folder / 'report.md'} (plots beside it)")
