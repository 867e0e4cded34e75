"""``lab-cnn`` (also ``lightning`` and ``python -m lab_cnn``): LightningCLI's fit, validate, test and
predict (lab_cnn.lightning_cli), and the commands of lab_cnn.cli.commands. Only what a command uses is imported."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path

from lab_cnn.cli import commands
from lab_cnn.errors import UserError, console_command, exit_on_user_error
from lab_cnn.parse_errors import did_you_mean

COMMANDS: dict[str, tuple[Callable[[list[str]], None], str]] = {
    "data": (commands.data_command, "fetch MNIST into data/MNIST/raw and verify its MD5s"),
    "summary": (commands.summary_command, "a config's model, layer by layer: output shapes and parameter counts"),
    "study": (commands.study_command, "run the variants of a study file and write its report"),
    "report": (commands.report_command, "rebuild a study's report from its recorded runs"),
    "explore": (commands.explore_command, "a local web page: every layer of a trained net at work on a digit you draw"),
}
LIGHTNING_COMMANDS = {
    "fit": "train a config's model (then test it on the 10,000 test images)",
    "validate": "run a checkpoint on the validation images",
    "test": "test a checkpoint on the test images",
    "predict": "predict the test images, or your own digit images, with a checkpoint",
}


def usage(prog: str) -> str:
    rows = [*LIGHTNING_COMMANDS.items(), *((name, text) for name, (_, text) in COMMANDS.items())]
    return "\n".join(
        [
            f"usage: {prog} COMMAND [options]    ({prog} COMMAND --help for its options)",
            "",
            "The lab's MNIST CNNs in PyTorch Lightning.",
            "",
            "commands:",
            *(f"  {name:<10} {text}" for name, text in rows),
            "",
            f"example: {prog} fit --config configs/baseline.yaml",
        ]
    )


def main(argv: list[str] | None = None, *, freeze_imports: bool = False) -> None:
    """Entry point: one line on stderr and exit code 2 for a user mistake, never a traceback.
    ``freeze_imports`` (a process of its own) keeps what Lightning's commands import out of the garbage collector."""
    args = sys.argv[1:] if argv is None else argv
    prog = "lightning" if Path(sys.argv[0]).name == "lightning" else "lab-cnn"
    if not args or args[0] in ("-h", "--help"):
        exit_on_user_error(prog, lambda: print(usage(prog)))
    elif args[0] in COMMANDS:
        exit_on_user_error(prog, lambda: COMMANDS[args[0]][0](args[1:]))
    elif args[0] in LIGHTNING_COMMANDS or args[0].startswith("-"):
        exit_on_user_error(prog, lambda: lightning_command(argv, prog, freeze_imports))
    else:
        exit_on_user_error(prog, lambda: unknown_command(args[0]))


def lightning_command(argv: list[str] | None, prog: str, freeze_imports: bool) -> None:
    """fit, validate, test or predict; Lightning imported here, where Ctrl-C during its seconds of imports is
    the one line it is later."""
    from lab_cnn.lightning_cli import lightning_cli

    if freeze_imports:
        # The imported objects live until exit: the collector's full passes need not walk them again
        # and again, and once more at exit (benchmarks/RESULTS.md has what that saves).
        gc.freeze()
    lightning_cli(argv, prog=prog)


def unknown_command(name: str) -> None:
    raise UserError(
        f"{name}: unknown command; {did_you_mean(name, [*LIGHTNING_COMMANDS, *COMMANDS]).replace('key', 'command')}"
    )


def run() -> None:
    """The console commands (``lab-cnn``, ``lightning``, ``python -m lab_cnn``): :func:`main` in a process
    of its own."""
    console_command(lambda: main(freeze_imports=True))
