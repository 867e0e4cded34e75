"""The commands besides LightningCLI's: ``data``, ``summary``, ``study`` and ``report``. None imports
Lightning unless it needs it."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import typing
from pathlib import Path

import yaml

from lab_cnn import mnist
from lab_cnn.config import config_paths, model_class_path, model_init_args, read_configs
from lab_cnn.errors import RECIPE, ArgumentParser, UserError, check_recipe, describe_parse_error, whole_number


def data_command(argv: list[str]) -> None:
    parser = ArgumentParser(
        prog="lab-cnn data",
        description="Fetch the four raw MNIST files into DATA_DIR/MNIST/raw and verify each by its official MD5.",
    )
    parser.add_argument("--data-dir", default="data", help="where to put MNIST/raw (default: data)")
    raw = mnist.fetch(parser.parse_args(argv).data_dir)
    for name, md5 in mnist.MD5.items():
        print(f"{raw / name}  MD5 {md5}  OK")


def registered_net(class_path: str) -> type | None:
    """The net that a model class of lab_cnn or keras_parity builds, from its package's ``nets.MODEL_NETS``:
    found without importing Lightning. None for any other class."""
    package = class_path.split(".")[0] if "." in class_path else "lab_cnn"
    try:
        nets = importlib.import_module(f"{package}.nets")
    except ImportError:
        return None
    return getattr(nets, "MODEL_NETS", {}).get(class_path.rsplit(".", 1)[-1])


def as_options(init_args: dict) -> list[str]:
    """A model's arguments as ``--model.KEY=VALUE`` options (values as JSON, texts as they are)."""
    return [
        f"--model.{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in init_args.items() if k != "class_path"
    ]


def model_arguments(argv: list[str], init_args: dict) -> list[str]:
    """The model's arguments as command-line options, as fit reads them: the configs' values first, then
    those of ``argv`` (``--model.init_args.X`` as ``--model.X``, and ``--model`` or ``--model.init_args``
    given as a mapping). The config files, the model's class and the other sections (trainer, data, ...),
    which build no layer, are left out."""
    options, i = as_options(init_args), 0
    while i < len(argv):
        flag, equals, value = argv[i].partition("=")
        has_value = bool(equals) or (i + 1 < len(argv) and not argv[i + 1].startswith("-"))
        value = value if equals else argv[i + 1] if has_value else ""
        if flag in ("--model", "--model.init_args"):
            spec = yaml.safe_load(value) if value else None
            if isinstance(spec, dict):
                options += as_options(spec.get("init_args") or {} if flag == "--model" else spec)
        elif flag.startswith("--model."):
            options.append(f"{flag.replace('--model.init_args.', '--model.', 1)}={value}" if has_value else flag)
        elif not flag.startswith("--") or flag == "--help" or flag == "-h":
            options.append(argv[i])
            has_value = bool(equals)
        i += 1 if equals or not has_value else 2
    return options


def summary_command(argv: list[str]) -> None:
    """``lab-cnn summary``: the model a config describes, layer by layer, built from the same arguments as
    ``fit`` builds it. lab-cnn's own models are built as their nets alone, without importing Lightning."""
    configs = read_configs(argv)
    class_path = model_class_path(configs, argv) or "lab_cnn.LabNet"
    net_class = registered_net(class_path)
    if net_class is None:
        return summary_of_any_model(argv)
    import jsonargparse

    from lab_cnn.summary import format_summary

    parser = jsonargparse.ArgumentParser(
        prog="lab-cnn summary",
        exit_on_error=False,
        allow_abbrev=False,
        description="Print each layer's output shape and parameter count of a config's model (no data needed). "
        f"Model knobs can be overridden, e.g. --model.kernel_size 3. The model: {class_path}.",
    )
    parser.add_argument(
        "-c", "--config", action="append", default=[], help="a lab-cnn config file, e.g. configs/baseline.yaml"
    )
    parser.add_class_arguments(net_class, "model", instantiate=False, fail_untyped=False)
    hints = typing.get_type_hints(check_recipe)
    for name, parameter in inspect.signature(check_recipe).parameters.items():
        parser.add_argument(
            f"--model.{name}", type=hints[name], default=parameter.default, help="training recipe (not shown)"
        )
    try:
        values = parser.parse_args(model_arguments(argv, model_init_args(configs))).model.as_dict()
    except argparse.ArgumentError as e:
        keys = {f"model.{k}" for k in [*inspect.signature(net_class).parameters, *RECIPE]} | {"config"}
        raise UserError(describe_parse_error(str(e), keys)) from None
    check_recipe(**{k: values.pop(k) for k in RECIPE})
    print(format_summary(net_class(**values)))


def summary_of_any_model(argv: list[str]) -> None:
    """A model class of another package: built through the whole model, as fit builds it (imports Lightning)."""
    from lab_cnn.lightning_cli import lightning_cli
    from lab_cnn.summary import format_summary

    configs = [a for path in config_paths(argv) for a in ("--config", path)]
    print(format_summary(lightning_cli([*configs, *model_arguments(argv, {})], run=False).model.net))


def study_command(argv: list[str]) -> None:
    from lab_cnn.report import write_report
    from lab_cnn.study import Settings, load_study, read_runs, run_study

    parser = ArgumentParser(
        prog="lab-cnn study",
        description="Run every variant of a study (configs/studies/*.yaml), each in its own process, record each run's "
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
        "--force", action="store_true", help="rerun variants that finished before; replace a report of other settings"
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
    args = parser.parse_args(argv)
    study = load_study(args.study)
    own = study.settings
    study.settings = Settings(args.epochs or own.epochs, args.limit_batches)
    folder = Path(args.out) if args.out else study.folder(shortened=study.settings != own)
    mnist.ensure(args.data_dir)  # fetched once here, not by every run at once
    failures = run_study(study, args.seeds, args.force, args.data_dir, folder)
    if read_runs(folder):  # a report of what finished, the failures listed in it
        write_report(folder)
        print(f"Report: {folder / 'report.md'} (plots beside it)")
    if failures:
        raise UserError(f"{len(failures)} runs failed ({'; '.join(failures)}); their output is in {folder / 'logs'}")


def report_command(argv: list[str]) -> None:
    from lab_cnn.report import write_report

    parser = ArgumentParser(
        prog="lab-cnn report",
        description="Rebuild a study's report.md and plots from its study.yaml and runs.json (both committed with it).",
    )
    parser.add_argument("folder", help="a study's report folder, e.g. reports/lab")
    folder = Path(parser.parse_args(argv).folder)
    if not (folder / "study.yaml").is_file():
        raise UserError(f"{folder}: no study.yaml here; run `lab-cnn study STUDY.yaml` first")
    write_report(folder)
    print(f"Report: {folder / 'report.md'} (plots beside it)")
