"""lab-cnn in Python: a run is a function call.

    import lab_cnn
    result = lab_cnn.fit("configs/baseline.yaml", model={"hidden_units": 25}, trainer={"max_epochs": 2})
    result.test_acc, result.history[-1]["val/acc"], result.checkpoint
    model = lab_cnn.load(result.checkpoint)          # the trained net, in eval mode

Each function makes exactly the run the command of its name makes (``lab_cnn.fit(...)`` is ``lab-cnn fit``):
the arguments become the command's options and go through the same parser, checks and run
(:mod:`lab_cnn.lightning_cli`, :mod:`lab_cnn.training`). A mistake raises :class:`lab_cnn.UserError` with
the message the command prints in its one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lab_cnn.config import yaml_line
from lab_cnn.errors import UserError, user_error

if TYPE_CHECKING:  # the modules that import Lightning load on the first call, not with lab_cnn
    from lab_cnn.data import MNISTDataModule
    from lab_cnn.module import Classifier
    from lab_cnn.training import RunResult

Config = str | Path | Sequence[str | Path]
Overrides = Mapping[str, Any] | None


def fit(
    config: Config,
    *,
    name: str | None = None,
    model: Overrides = None,
    data: Overrides = None,
    trainer: Overrides = None,
    ckpt_path: str | Path | None = None,
    inspect: bool = True,
    seed: int | None = None,
) -> RunResult:
    """Train the model of ``config`` (a config file, or several stacked) with ``model``, ``data`` and ``trainer``
    overrides, then test it on the 10,000 test images; ``ckpt_path`` resumes a run (``last``: the newest of
    the run name's). Returns the :class:`~lab_cnn.training.RunResult`."""
    return run_command("fit", config, name, model, data, trainer, ckpt_path, inspect, seed)


def test(
    config: Config,
    ckpt_path: str | Path,
    *,
    name: str | None = None,
    model: Overrides = None,
    data: Overrides = None,
    trainer: Overrides = None,
    inspect: bool = True,
) -> RunResult:
    """Test a checkpoint (a file, ``last``, or a state_dict of the lab's script) on the test images; logged in
    its run's folder. The keyword arguments are :func:`fit`'s."""
    return run_command("test", config, name, model, data, trainer, ckpt_path, inspect)


def validate(
    config: Config,
    ckpt_path: str | Path,
    *,
    name: str | None = None,
    model: Overrides = None,
    data: Overrides = None,
    trainer: Overrides = None,
    inspect: bool = True,
) -> RunResult:
    """Run a checkpoint on the validation images (``data={"val_size": N}`` holds out N training images)."""
    return run_command("validate", config, name, model, data, trainer, ckpt_path, inspect)


def predict(
    config: Config,
    ckpt_path: str | Path,
    images: str | Path | None = None,
    *,
    name: str | None = None,
    model: Overrides = None,
    data: Overrides = None,
    trainer: Overrides = None,
) -> RunResult:
    """Predict the test images, or your own digit images (a folder or glob of PNG/JPEG), with a checkpoint;
    the result's ``predictions`` is the CSV written in the run's folder."""
    if images is not None:
        data = {**mapping("data", data), "predict_path": str(images)}
    return run_command("predict", config, name, model, data, trainer, ckpt_path)


def load(checkpoint: str | Path, config: Config | None = None) -> Classifier:
    """The model of a run's checkpoint, built from the run's own ``config.yaml`` (or from ``config``, which the
    checkpoint must fit), its weights loaded, in eval mode."""
    return model_and_data(checkpoint, config, key="load")[0]


def model_and_data(
    checkpoint: str | Path, config: Config | None = None, key: str = "--ckpt_path"
) -> tuple[Classifier, MNISTDataModule]:
    """:func:`load`'s model and the data module of the same config (how its images are normalized). Without
    ``config`` the checkpoint must be in a run folder with its config.yaml; with it, ``last`` is the newest
    last.ckpt of the config's runs, as for ``lab-cnn test``. Messages name ``key``."""
    from lab_cnn import checkpoints, training

    try:
        if not isinstance(checkpoint, (str, Path)) or config is None and str(checkpoint) == "last":
            raise UserError(
                f"{key}: {checkpoint!r} is not allowed; give a checkpoint file's path, e.g. result.checkpoint"
            )
        configs = config_files(config) if config is not None else []
        found = checkpoints.load(checkpoint_file(checkpoint, configs, key), key=key)
        model, data = from_configs(configs) if configs else from_run_folder(found, key)
        training.check_checkpoint("test", model, data, found)  # every weight fits, ...; a state_dict is loaded
        if found.lightning:
            model.load_state_dict(checkpoints.matching_state_dict(model, found))
    except Exception as e:  # noqa: BLE001 - a user mistake becomes a UserError; raise_as_user_error re-raises a bug
        raise_as_user_error(e)
    return model.eval(), data


def checkpoint_file(checkpoint: str | Path, configs: list[str], key: str = "--ckpt_path") -> Path:
    """The file a checkpoint argument names: a path, or ``last``, the newest last.ckpt of the first config's runs."""
    from lab_cnn import checkpoints
    from lab_cnn.runs import LOG_DIR

    return checkpoints.find(str(checkpoint), LOG_DIR / (Path(configs[0]).stem if configs else "default"), key=key)


def from_configs(configs: list[str]) -> tuple[Classifier, MNISTDataModule]:
    """The model and data module of config files, built by fit's own parser (no Trainer, no data read)."""
    from lab_cnn.lightning_cli import lightning_cli

    cli = lightning_cli([a for path in configs for a in ("--config", path)], run=False)
    return cli.model, cli.datamodule


def from_run_folder(checkpoint: Any, key: str) -> tuple[Classifier, MNISTDataModule]:
    """The model and data module a run's config.yaml describes, as LightningCLI builds them from it."""
    from jsonargparse import ArgumentParser

    from lab_cnn.config import read_yaml
    from lab_cnn.data import MNISTDataModule  # noqa: F811 - the classes themselves, here at run time
    from lab_cnn.module import Classifier  # noqa: F811

    run_dir = checkpoint.run_dir
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        raise UserError(
            f"{key}: {checkpoint.path} is not in a run folder with its config.yaml "
            "(lightning_logs/<name>/version_N/checkpoints/); give the config it was trained with, or build the "
            "model yourself and load the weights"
        )
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(Classifier, "model", fail_untyped=False)
    parser.add_class_arguments(MNISTDataModule, "data", fail_untyped=False)
    recorded = read_yaml(run_dir / "config.yaml", "run's config.yaml")
    # jsonargparse 4.49 renamed instantiate_classes to instantiate (the old name warns); 4.32 has only the old
    instantiate = getattr(parser, "instantiate", parser.instantiate_classes)
    built = instantiate(parser.parse_object({k: recorded.get(k) or {} for k in ("model", "data")}))
    return built.model, built.data


def config_files(config: Config) -> list[str]:
    """A config file, or a list of them, as a list of paths."""
    configs = [config] if isinstance(config, (str, Path)) else list(config) if isinstance(config, Sequence) else []
    if not configs or not all(isinstance(path, (str, Path)) for path in configs):
        raise UserError(f"config: {config!r} is not allowed; give a config file, or a list of them")
    return [str(path) for path in configs]


def run_command(
    stage: str,
    config: Config,
    name: str | None = None,
    model: Overrides = None,
    data: Overrides = None,
    trainer: Overrides = None,
    ckpt_path: str | Path | None = None,
    inspect: bool = True,
    seed: int | None = None,
) -> RunResult:
    """The command ``lab-cnn STAGE`` with these arguments as its options; its result."""
    from lab_cnn.lightning_cli import lightning_cli

    try:
        argv = [stage, *(a for path in config_files(config) for a in ("--config", path))]
        for section, overrides in (("model", model), ("data", data), ("trainer", trainer)):
            argv += options(f"--{section}.", mapping(section, overrides))
        argv += options("--", {"name": name, "ckpt_path": ckpt_path, "seed_everything": seed, "inspect": inspect})
        return lightning_cli(argv).result
    except Exception as e:  # noqa: BLE001 - a user mistake becomes a UserError; raise_as_user_error re-raises a bug
        raise_as_user_error(e)


def mapping(section: str, overrides: Overrides) -> Mapping[str, Any]:
    """The overrides of a section: a dict of keys and values (None: none)."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise UserError(f"{section}: {overrides!r} is not allowed; give its overrides as a dict, e.g. {{'lr': 0.1}}")
    return overrides


def options(prefix: str, values: Mapping[str, Any]) -> list[str]:
    """``{"lr": 0.1}`` as ``["--model.lr=0.1"]`` (prefix ``--model.``): values as YAML, which is how the command
    reads them; a text as it is; None leaves the option out."""
    return [
        f"{prefix}{key}={value if isinstance(value, (str, Path)) else flow_yaml(f'{prefix[2:]}{key}', value)}"
        for key, value in values.items()
        if value is not None
    ]


def flow_yaml(key: str, value: Any) -> str:
    """``value`` as one line of YAML: ``[10, 20]``, ``.inf``, ``true``, ``{a: 1}``; numpy and torch numbers (a
    sweep's ``np.linspace``) as the Python numbers they hold. A value a config file could not hold (a function,
    an object) is refused, naming ``key``: the command line could not have given it."""
    value = plain(value)
    if not config_value(value):
        raise UserError(
            f"{key}: {value!r} is not allowed; give what a config file holds: a number, a text, true or false, "
            "or a list or dict of them (an object as {'class_path': ..., 'init_args': {...}})"
        )
    return yaml_line(value)


def config_value(value: Any) -> bool:
    """Whether ``value`` is what a config file holds: a number, a text, true or false, null, or a list or dict
    of them. Not a set (YAML's ``!!set``, which the parser would take as a list in no order), bytes or an object."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and config_value(v) for k, v in value.items())
    if isinstance(value, list):
        return all(config_value(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def plain(value: Any) -> Any:
    """``value`` with numpy and torch scalars and arrays as Python numbers and lists (their ``tolist()``), and
    paths as texts."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value.tolist() if hasattr(value, "tolist") else value


def raise_as_user_error(error: Exception) -> NoReturn:
    """A user mistake as :class:`UserError` with the command's one-line message; anything else as it is."""
    message = user_error(error)
    if message is None or isinstance(error, UserError) and str(error) == message:
        raise error
    raise UserError(message) from None
