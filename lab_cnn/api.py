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

import yaml

from lab_cnn.errors import UserError, user_error

if TYPE_CHECKING:  # the modules that import Lightning load on the first call, not with lab_cnn
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


def test(config: Config, ckpt_path: str | Path, **options: Any) -> RunResult:
    """Test a checkpoint (a file, ``last``, or a state_dict of the lab's script) on the test images; logged in
    its run's folder. ``options``: those of :func:`fit`."""
    return run_command("test", config, ckpt_path=ckpt_path, **options)


def validate(config: Config, ckpt_path: str | Path, **options: Any) -> RunResult:
    """Run a checkpoint on the validation images (``data={"val_size": N}`` holds out N training images)."""
    return run_command("validate", config, ckpt_path=ckpt_path, **options)


def predict(config: Config, ckpt_path: str | Path, images: str | Path | None = None, **options: Any) -> RunResult:
    """Predict the test images, or your own digit images (a folder or glob of PNG/JPEG), with a checkpoint;
    the result's ``predictions`` is the CSV written in the run's folder."""
    data = {**(options.pop("data", None) or {}), **({"predict_path": str(images)} if images is not None else {})}
    return run_command("predict", config, ckpt_path=ckpt_path, data=data, **options)


def load(checkpoint: str | Path) -> Classifier:
    """The model of a run's checkpoint, built from the run's own ``config.yaml``, its weights loaded, in eval mode."""
    from jsonargparse import ArgumentParser

    from lab_cnn import checkpoints
    from lab_cnn.config import read_yaml
    from lab_cnn.module import Classifier  # noqa: F811 - the class itself, here at run time

    try:
        found = checkpoints.load(checkpoints.find(str(checkpoint), Path(".")))
        run_dir = found.run_dir
        if run_dir is None or not (run_dir / "config.yaml").is_file():
            raise UserError(
                f"load: {checkpoint} is not in a run folder with its config.yaml "
                "(lightning_logs/<name>/version_N/checkpoints/); give a run's checkpoint, or build the model "
                "yourself and load the weights"
            )
        parser = ArgumentParser(exit_on_error=False)  # the model, as LightningCLI builds it from the config
        parser.add_subclass_arguments(Classifier, "model", fail_untyped=False)
        section = {"model": read_yaml(run_dir / "config.yaml", "run's config.yaml").get("model")}
        model = parser.instantiate_classes(parser.parse_object(section)).model
        model.load_state_dict(checkpoints.matching_state_dict(model, found))
    except Exception as e:  # noqa: BLE001 - a user mistake becomes a UserError; raise_as_user_error re-raises a bug
        raise_as_user_error(e)
    return model.eval()


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

    configs = [config] if isinstance(config, (str, Path)) else list(config)
    argv = [stage, *(a for path in configs for a in ("--config", str(path)))]
    for section, overrides in (("model", model), ("data", data), ("trainer", trainer)):
        argv += options(f"--{section}.", overrides or {})
    argv += options("--", {"name": name, "ckpt_path": ckpt_path, "seed_everything": seed, "inspect": inspect})
    try:
        return lightning_cli(argv).result
    except Exception as e:  # noqa: BLE001 - a user mistake becomes a UserError; raise_as_user_error re-raises a bug
        raise_as_user_error(e)


def options(prefix: str, values: Mapping[str, Any]) -> list[str]:
    """``{"lr": 0.1}`` as ``["--model.lr=0.1"]`` (prefix ``--model.``): values as YAML, which is how the command
    reads them; a text as it is; None leaves the option out."""
    return [
        f"{prefix}{key}={value if isinstance(value, (str, Path)) else flow_yaml(value)}"
        for key, value in values.items()
        if value is not None
    ]


def flow_yaml(value: Any) -> str:
    """``value`` as one line of YAML: ``[10, 20]``, ``.inf``, ``true``, ``{a: 1}``."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("\n").removesuffix("\n...")


def raise_as_user_error(error: Exception) -> NoReturn:
    """A user mistake as :class:`UserError` with the command's one-line message; anything else as it is."""
    message = user_error(error)
    if message is None or isinstance(error, UserError) and str(error) == message:
        raise error
    raise UserError(message) from None
