"""What a report folder holds: ``runs.json`` (every run's numbers, by key) and ``study.yaml`` (the study the
report is of), read and checked. Both are committed and may be edited by hand, so every value the report reads
is checked here before any file is written: a mistake is one UserError naming the file and the entry, never a
traceback, a rewritten plot or a verdict from a number that is not one. And a report folder belongs to one
study (:func:`check_folder`): another study's report, or a folder of other files, is refused."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import reprlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab_cnn.config import read_yaml
from lab_cnn.documented import documented_at
from lab_cnn.errors import UserError, first_line
from lab_cnn.validators import positive_int

if TYPE_CHECKING:  # study.py imports this module: the study's types are only read here, never built
    from lab_cnn.studies.study import Study

RUNS = "runs.json"  # beside report.md: every run's numbers, keyed by run
SPEC = "study.yaml"  # beside report.md: the study, its seeds and each variant's run keys
FRAMEWORKS = ("pytorch", "keras")
# What a study writes into its folder before study.yaml (which comes last): a first run stopped part way
BEFORE_SPEC = {RUNS, f".{RUNS}.tmp", "logs"}
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=-]*")  # a comparison's name names its PNG beside report.md
FIX = "fix or remove it"


def number(low: float, high: float = math.inf) -> Callable[[str, object], float]:
    """A check of a finite number in [low, high]; JSON's NaN and Infinity and quoted numbers are not numbers."""

    def check(where: str, value: object) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
            if math.isfinite(number) and low <= number <= high:
                return number
        limits = f"in [{low:g}, {high:g}]" if high < math.inf else f">= {low:g}"
        raise UserError(f"{where}: {reprlib.repr(value)} is not allowed; use a number {limits}")

    return check


def text(where: str, value: object) -> str:
    """A text that is not blank and that UTF-8 can write (JSON and YAML also hold lone surrogates, like "\\ud800")."""
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: {value!r} is not allowed; use a text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UserError(f"{where}: {value!r} is not allowed: character {e.start + 1} is not a character") from None
    return value


def per_epoch(check: Callable[[str, object], float]) -> Callable[[str, object], list[float]]:
    """A check of a list of one ``check``ed number per epoch."""

    def checked(where: str, value: object) -> list[float]:
        if not isinstance(value, list) or not value:
            raise UserError(f"{where}: {value!r} is not allowed; use a list of one number per epoch")
        return [check(f"{where}[{i}]", v) for i, v in enumerate(value)]

    return checked


percent, non_negative = number(0, 100), number(0)
# Every field of a run that the report or the study reads, and its check; the others are kept as they are
RUN_FIELDS: dict[str, Callable[[str, object], object]] = {
    "seed": positive_int,
    "train_acc": per_epoch(percent),
    "train_loss": per_epoch(non_negative),
    "test_acc": percent,
    "test_loss": non_negative,
    "test_images": positive_int,
    "params": positive_int,
    "seconds": non_negative,
    "process_seconds": non_negative,
    "machine": text,
}


def checked_run(where: str, key: str, run: object) -> dict[str, Any]:
    """``run``, the record of the run ``key``, if it holds every field the report reads, each of its kind."""
    if not isinstance(run, dict):
        raise UserError(f"{where}: {run!r} is not allowed; a run is keys and values; {FIX}")
    if run.get("key", key) != key:
        raise UserError(f"{where}: its key is {run['key']!r}, not the {key!r} it is filed under; {FIX}")
    for field, check in RUN_FIELDS.items():
        if field not in run:
            raise UserError(f"{where}: no {field}; {FIX}")
        check(f"{where}: {field}", run[field])
    if len(run["train_acc"]) != len(run["train_loss"]):
        epochs = f"{len(run['train_acc'])} epochs of train_acc, {len(run['train_loss'])} of train_loss"
        raise UserError(f"{where}: {epochs}; {FIX}")
    return run


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a key given twice in one object is refused, where JSON keeps the last silently."""

    def once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        twice = [k for k, n in Counter(k for k, _ in pairs).items() if n > 1]
        if twice:
            entry = dict(pairs).get("key")
            inside = f"entry {entry!r}: " if isinstance(entry, str) else ""
            raise UserError(f"{path}: {inside}{twice[0]!r} is given twice (JSON would keep the last); remove one")
        return dict(pairs)

    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=once)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a text file (byte {e.start} is not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno}); {FIX}") from None
    except UserError:  # a key given twice (once)
        raise
    except (ValueError, RecursionError) as e:  # a number of over 4300 digits; lists nested thousands deep
        raise UserError(f"{path}: not JSON lab-cnn can read ({first_line(e)}); {FIX}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror})") from None


def replace_file(path: Path, content: str | bytes) -> None:
    """``path`` replaced by ``content`` at once (:func:`replace_files`)."""
    replace_files({path: content})


def replace_files(contents: dict[Path, str | bytes]) -> None:
    """Each path replaced by its content, by a file beside it renamed over it, all new files written before
    any is renamed: a write that fails (a full disk) leaves every file as it was, not a report.md of the old
    runs beside plots of the new; a link at a path is replaced, not written through (to a file outside)."""
    for path in contents:  # what a rename over it would fail on, after the files before it were renamed
        if path.is_dir() and not path.is_symlink():
            raise UserError(f"{path}: cannot be replaced (Is a directory)")
    written: list[Path] = []
    try:
        for path, content in contents.items():
            temporary = path.with_name(f".{path.name}.tmp")
            try:
                temporary.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
            except OSError as e:
                raise UserError(
                    f"{temporary} (the new {path.name}, before it replaces it): cannot be written ({e.strerror})"
                ) from None
            written.append(temporary)
        for path, temporary in zip(contents, list(written)):
            try:
                os.replace(temporary, path)
            except OSError as e:
                raise UserError(f"{path}: cannot be replaced ({e.strerror})") from None
            written.remove(temporary)
    finally:
        for temporary in written:  # the new files not renamed into place
            with contextlib.suppress(OSError):
                temporary.unlink()


def read_runs(folder: Path) -> dict[str, dict[str, Any]]:
    """A report folder's recorded runs, by key, each checked; none when it has no ``runs.json`` yet."""
    path = folder / RUNS
    if not os.path.lexists(path):
        return {}
    if not path.is_file():  # a folder, a FIFO, a link to nowhere: not "no runs yet", which would make them all again
        raise UserError(f"{path}: not a file of runs; {FIX}")
    runs = read_json(path)
    if not isinstance(runs, dict):
        raise UserError(f"{path}: a {type(runs).__name__}, not the runs by key; {FIX}")
    return {key: checked_run(f"{path}: entry {key!r}", key, run) for key, run in runs.items()}


def fields(
    where: str, spec: object, required: dict[str, Callable], optional: dict[str, Callable], sep: str = "."
) -> dict[str, Any]:
    """``spec``'s values, each checked by its field's check (named ``where``, ``sep``, the field); every required
    field there, no unknown one; an optional field that is absent or null is None (its check is not asked)."""
    if not isinstance(spec, dict):
        raise UserError(f"{where}: {spec!r} is not allowed; give keys and values")
    unknown = set(spec) - set(required) - set(optional)
    if unknown:
        raise UserError(f"{where}: unknown key {sorted(map(str, unknown))[0]!r}")
    missing = [k for k in required if k not in spec]
    if missing:
        raise UserError(f"{where}: no {missing[0]}")
    checked = {k: check(f"{where}{sep}{k}", spec[k]) for k, check in required.items()}
    return checked | {
        k: None if spec.get(k) is None else check(f"{where}{sep}{k}", spec[k]) for k, check in optional.items()
    }


def texts(where: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise UserError(f"{where}: {value!r} is not allowed; give a list")
    return [text(f"{where}[{i}]", v) for i, v in enumerate(value)]


def mapping(where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: {value!r} is not allowed; give keys and values")
    return value


def framework(where: str, value: object) -> str:
    if value not in FRAMEWORKS:
        raise UserError(f"{where}: {value!r} is not allowed; use pytorch or keras")
    return str(value)


# What the report reads of a variant's figures in documented_results.yaml, by framework (how the lab counted)
LAB_FIGURES = {
    "pytorch": {"train_acc", "train_loss", "test_correct", "test_loss"},
    "keras": {"train_acc", "train_loss", "test_acc", "test_loss"},
}


def documented_path(where: str, value: object) -> str:
    """A variant's figures in documented_results.yaml, ``<framework>.<study>.<variant>``, with each the report reads."""
    path = text(where, value)
    try:
        figures = documented_at(path)
    except (KeyError, TypeError):
        raise UserError(f"{where}: {value!r} is not in documented_results.yaml") from None
    if not isinstance(figures, dict) or not LAB_FIGURES.get(path.split(".")[0], {""}) <= set(figures):
        raise UserError(
            f"{where}: {value!r} in documented_results.yaml is not a variant's figures "
            "(such as pytorch.pooling_study.max)"
        )
    return path


def documented_for(where: str, documented: str | None, framework: str) -> None:
    """The lab's figures of a variant are those of its comparison's framework, as the report scales them."""
    if documented is not None and documented.split(".")[0] != framework:
        raise UserError(
            f"{where}: {documented!r} are the lab's {documented.split('.')[0]} figures; the comparison's framework "
            f"is {framework}"
        )


def file_name(where: str, value: object) -> str:
    """A comparison's name: its plot is ``<name>.png`` beside report.md."""
    if not isinstance(value, str) or not FILE_NAME.fullmatch(value):
        raise UserError(f"{where}: {value!r} is not allowed; use letters, digits, _ . = and -")
    return value


def named(where: str, items: object, what: str, check: Callable[[str, object], str]) -> list[tuple[str, Any]]:
    """``items``, a non-empty list of mappings with a ``name`` each, once each: their names and themselves."""
    if not isinstance(items, list) or not items:
        raise UserError(f"{where}: {items!r} is not allowed; give a list of {what}")
    names = [check(f"{where}[{i}].name", mapping(f"{where}[{i}]", item).get("name")) for i, item in enumerate(items)]
    twice = [n for n, count in Counter(names).items() if count > 1]
    if twice:
        raise UserError(f"{where}: two {what} are named {twice[0]!r}")
    return list(zip(names, items))


def checked_variant(where: str, spec: Any, seeds: int) -> dict[str, Any]:
    variant = fields(
        where,
        spec,
        {"name": text, "keys": texts},
        {"config": text, "args": texts, "keras": mapping, "documented": documented_path},
    )
    variant["args"] = variant["args"] or []
    if (variant["config"] is None) == (variant["keras"] is None):
        raise UserError(f"{where}: give either config (lab-cnn) or keras (keras-parity)")
    if len(variant["keys"]) != seeds or len(set(variant["keys"])) != seeds:
        raise UserError(f"{where}.keys: {len(set(variant['keys']))} different keys; seeds is {seeds}, one key each")
    return variant


def checked_comparison(where: str, spec: Any, seeds: int) -> dict[str, Any]:
    comparison = fields(
        where,
        spec,
        {"name": file_name, "title": text, "framework": framework, "variants": lambda _, v: v},
        {"claim": text, "expect_best": text},
    )
    variants = named(f"{where}.variants", comparison["variants"], "variants", text)
    comparison["variants"] = [checked_variant(f"{where}.variants.{n}", v, seeds) for n, v in variants]
    for n, v in zip((n for n, _ in variants), comparison["variants"]):
        documented_for(f"{where}.variants.{n}.documented", v["documented"], comparison["framework"])
    if comparison["expect_best"] not in {None, *(n for n, _ in variants)}:
        raise UserError(f"{where}.expect_best: {comparison['expect_best']!r} is not one of its variants")
    return comparison


def read_spec(folder: Path) -> dict[str, Any]:
    """A report folder's ``study.yaml``, checked: every field the report reads there, of its kind, optional
    fields as None."""
    path = folder / SPEC
    spec = fields(
        str(path),
        read_yaml(path, what="study record"),
        {"name": text, "epochs": positive_int, "seeds": positive_int, "comparisons": lambda _, v: v},
        {"limit_batches": positive_int, "failures": texts},
        sep=": ",
    )
    spec["failures"] = spec["failures"] or []
    comparisons = named(f"{path}: comparisons", spec["comparisons"], "comparisons", file_name)
    spec["comparisons"] = [checked_comparison(f"{path}: comparisons.{n}", c, spec["seeds"]) for n, c in comparisons]
    return spec


def read_report(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``study.yaml`` and ``runs.json`` of a report folder, each checked, and checked against each other:
    each listed run has one number per epoch of the study."""
    spec, runs = read_spec(folder), read_runs(folder)
    for c in spec["comparisons"]:
        for key in (key for v in c["variants"] for key in v["keys"] if key in runs):
            if len(runs[key]["train_acc"]) != spec["epochs"]:
                raise UserError(
                    f"{folder / RUNS}: entry {key!r}: {len(runs[key]['train_acc'])} epochs of train_acc; "
                    f"its study ({folder / SPEC}) has {spec['epochs']}; {FIX}"
                )
    return spec, runs


def other_study(spec: dict[str, Any], study: Study) -> str | None:
    """What makes the study recorded in ``spec`` another than ``study``, in words; None when it is the same
    (its seeds aside: more seeds add runs to the same study)."""
    settings = study.settings
    if spec["name"] != study.name:
        return f"the report of the study {spec['name']!r}; this one is {study.name!r}"
    if (spec["epochs"], spec["limit_batches"]) != (settings.epochs, settings.limit_batches):
        return (
            f"a study of {spec['epochs']} epochs, limit_batches {spec['limit_batches']}; this one has "
            f"{settings.epochs} and {settings.limit_batches}"
        )
    theirs, ours = spec["comparisons"], [asdict(c) for c in study.comparisons]  # as study.yaml records them
    their_names, our_names = ", ".join(c["name"] for c in theirs), ", ".join(c["name"] for c in ours)
    if their_names != our_names:
        return f"the report of {spec['name']!r} of the comparisons {their_names}; this one has {our_names}"
    for their, our, c in zip(theirs, ours, study.comparisons):
        differs = different(their, our, "variants")
        if differs:
            return f"the report of {spec['name']!r} whose comparison {c.name} has {differs}"
        for their_v, our_v, v in zip(their["variants"], our["variants"], c.variants):
            differs = different(their_v, our_v)
            keys = [v.key(settings, seed) for seed in range(1, len(their_v["keys"]) + 1)]
            if not differs and their_v["keys"] != keys:
                differs = "other runs (its config's content changed since)"
            if differs:
                return f"the report of {spec['name']!r} whose {c.name}/{v.name} has {differs}"
    return None


def different(theirs: dict[str, Any], ours: dict[str, Any], nested: str = "") -> str | None:
    """The first field of ``ours`` that ``theirs`` records otherwise, in words; a ``nested`` list by its names."""
    for field, value in sorted(ours.items(), key=lambda item: item[0] != nested):  # what is compared comes first
        recorded = theirs[field]  # read_spec gives every field, None where it is absent
        if field == nested:
            value, recorded = [v["name"] for v in value], [v["name"] for v in recorded]
        if recorded != value:
            return f"{field} {recorded!r}; this one's {value!r}"
    return None


def check_folder(folder: Path, study: Study, force: bool) -> None:
    """A report folder belongs to one study: refuse a folder of another study's report, of other settings, or
    of other files; its own study may add runs to it. Its records are checked too, before anything is run."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a report folder; pass --out for a folder")
    holder = next((p for p in folder.resolve().parents if (p / SPEC).is_file()), None)
    if holder is not None:
        raise UserError(f"{folder} is inside the report folder {holder}; pass --out for a folder outside it")
    refused = None if force else claim(folder, study)
    if refused:
        forced = "replace it" if (folder / SPEC).is_file() else "write the report there all the same"
        raise UserError(f"{folder} holds {refused}: pass --out for another folder, or --force to {forced}")
    read_runs(folder)


def claim(folder: Path, study: Study) -> str | None:
    """Why ``folder`` is not ``study``'s report folder, or None: it is new, empty, its own, or the start of its own
    (runs of it and no study.yaml yet, as a first run stopped part way leaves it)."""
    if (folder / SPEC).is_file():
        return other_study(read_spec(folder), study)
    others = sorted(p.name for p in folder.iterdir() if p.name not in BEFORE_SPEC) if folder.is_dir() else []
    if others:
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        return f"other files than a study's report ({', '.join(others[:3])}{more})"
    runs = read_runs(folder)
    seeds = {run["seed"] for run in runs.values()}
    own = {v.key(study.settings, seed) for seed in seeds for c in study.comparisons for v in c.variants}
    foreign = sorted(set(runs) - own)
    return f"runs of another study in {RUNS} ({foreign[0]}) and no {SPEC}" if foreign else None
