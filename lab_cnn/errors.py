"""User mistakes: the one exception type, and the one place (:func:`exit_on_user_error`) that turns a mistake
into one line on stderr and exit code 2. The checks that raise it are in :mod:`lab_cnn.validators`; the
rewriting of argparse's and jsonargparse's messages into one line in :mod:`lab_cnn.parse_errors`.

What counts as a user's mistake: a :class:`UserError`; a bad argument found by argparse or
jsonargparse; Lightning's own checks of its arguments (``MisconfigurationException``); an ``OSError``
on a path (a folder that cannot be written, a file that cannot be read); running out of memory.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)
OUT_OF_MEMORY = re.compile(r"out of memory|can't allocate memory", re.IGNORECASE)  # torch's words, CPU and CUDA
# Where in their C++ torch and TensorFlow failed, before what they failed to allocate:
# "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: ...", "{{function_node ...}} OOM when ..."
ALLOCATOR_PREFIX = re.compile(r"^(\[enforce fail at [^\]]*\][^.]*\.|\{\{[^}]*\}\})\s*")


class UserError(ValueError):
    """A mistake in a config, an argument or a data file: the commands report it in one line, no traceback."""


class SettingError(UserError):
    """A setting's value refused: ``key: problem``. A net names its knobs by its own arguments (``kernel_size``);
    the model that takes them as ``**knobs`` names them as a config, a command line or ``lab_cnn.fit(model=...)``
    does, :meth:`under` its section (``model.kernel_size``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem

    def __reduce__(self) -> tuple[type[SettingError], tuple[str, str]]:  # a worker's error reaches the study whole
        return type(self), (self.key, self.problem)

    def under(self, section: str) -> SettingError:
        return SettingError(f"{section}.{self.key}", self.problem)


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (whitespace collapsed), or its type's name when it has none."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[0].split()) if lines else type(error).__name__


# A command-line value that starts with "-" and a digit is a negative number, not an option: Python 3.14's
# rule (python/cpython#155339). Python 3.11 to 3.13 read only -5 and -0.5 so, and took `--model.lr -1e-3` or
# `--seed -1_000` for an option without its value ("expected one argument").
NEGATIVE_NUMBER = re.compile(r"-\.?\d")


class ReadsNegativeNumbers:
    """A parser mixin (argparse's or jsonargparse's) that reads negative numbers as Python 3.14 does. The
    workaround sets argparse's private matcher: older Pythons have no public way to change it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER


class ArgumentParser(ReadsNegativeNumbers, argparse.ArgumentParser):
    """argparse whose mistakes become a UserError (one line), not usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UserError(message)


def user_error(error: BaseException) -> str | None:
    """The one-line message of a user mistake anywhere in ``error``'s chain; None for a bug."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, UserError):
            return " ".join(str(cause).split())
        if type(cause).__name__ == "MisconfigurationException":  # Lightning's checks of its own arguments
            return first_line(cause)
        if isinstance(cause, OSError) and cause.filename:  # TensorBoard's writer names files in bytes
            return f"{os.fsdecode(cause.filename)}: {cause.strerror or first_line(cause)}"
        if (
            isinstance(cause, MemoryError)
            or (isinstance(cause, RuntimeError) and OUT_OF_MEMORY.search(str(cause)))
            or type(cause).__name__ == "ResourceExhaustedError"  # TensorFlow's: an OpError, "OOM when allocating"
        ):
            words = ALLOCATOR_PREFIX.sub("", first_line(cause))
            return f"the model or its batches do not fit in memory ({words}); use smaller settings"
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, argparse.ArgumentError):
        return " ".join(str(error).split())
    return None


def exit_on_user_error(prog: str, command: Callable[[], object]) -> None:
    """Run ``command``; a user mistake prints ``prog: error: ...`` on stderr and exits 2, Ctrl-C one line
    and exit code 130, a bug raises. Output to a pipe closed early (``lab-cnn --help | head -1``) ends the
    command quietly, as Python's docs advise (docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    try:
        try:
            command()
        finally:  # here, where a closed pipe can still be caught, not at exit (also after argparse's --help)
            if sys.stdout is not None:  # None: started with stdout closed (`lab-cnn --help >&-`); print() skips it
                sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the interpreter's last flush goes nowhere
        sys.exit(1)
    except KeyboardInterrupt as e:
        print(f"{prog}: interrupted" + (f"; {e}" if str(e) else ""), file=sys.stderr)
        sys.exit(INTERRUPTED)
    except Exception as e:
        message = user_error(e)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def console_command(command: Callable[[], object]) -> None:
    """A console command's process (``lab-cnn``, ``keras-parity``): ``command``, which exits as
    :func:`exit_on_user_error` has it. Once it has ended (done, refused or interrupted) the process ignores
    Ctrl-C while it leaves: there is nothing left to stop, and a Ctrl-C then would cut the interpreter's exit
    short, with a finalizer's traceback, or killed by SIGINT with no line (a study's report written, exit
    status -2). Not for a call inside someone's Python."""
    try:
        command()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
