"""Commands run as forks of one process that has imported them once.

Each command still runs in a process of its own, through its console entry point (``lab_cnn.cli.run``,
``keras_parity.cli.main``) with its own argv, working folder (first on ``sys.path``, as ``python -m`` puts
it), stdout and stderr, stdin from /dev/null, and ends as that process would; only the seconds of
``import lightning`` are paid once per server instead of once per command. What a fork shares with its
server: the hash seed and the state of the imports. DDP, which starts its other processes by running this
one's command line again, and CUDA, which may not start in a fork of a process that probed it, need a new
interpreter (conftest.run with ``env``)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


class CommandServer:
    """One server process for ``command`` (``lab_cnn`` or ``keras_parity``), holding what that command's process
    imports before it starts; :meth:`run` forks it for one run of the command and waits for that fork to end."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def run(self, *args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        """The command's result; on a timeout the fork and the server are killed (the server is then unusable)."""
        with tempfile.TemporaryDirectory() as outputs:
            out, err = Path(outputs, "stdout"), Path(outputs, "stderr")
            request = {"args": list(args), "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            fork = int(self.reply())
            if not select.select([self.process.stdout], [], [], timeout)[0]:
                os.kill(fork, signal.SIGKILL)
                self.process.kill()
                raise subprocess.TimeoutExpired(args, timeout, out.read_text(), err.read_text())
            returncode = int(self.reply())
            return subprocess.CompletedProcess(args, returncode, out.read_text(), err.read_text())

    def reply(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the command server ended (exit {self.process.wait()}); its error is above")
        return line

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def serve(command: str) -> None:
    """Import what ``command``'s process imports (lab-cnn's Lightning commands: Lightning; keras-parity: its
    CLI alone, TensorFlow when it trains), then fork once per request read from stdin."""
    if command == "lab_cnn":
        import lab_cnn.lightning_cli  # noqa: F401
        from lab_cnn.cli import run as main

        prog = "lab-cnn"
    else:
        from keras_parity.cli import main

        prog = "keras-parity"
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the command's own process: it ends as the command would, at its exit or exception
            os.chdir(request["cwd"])
            sys.path[0] = os.getcwd()
            for fd, path, mode in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                                   (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):  # fmt: skip
                os.dup2(os.open(path, mode), fd)
            sys.argv = [prog, *request["args"]]
            main()
            sys.exit(0)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
