"""Commands run as forks of one process that has imported them once.

Each command still runs in a process of its own, through its console entry point (``lab_cnn.cli.run``,
``keras_parity.cli.main``) with its own argv, working folder, stdout and stderr, and ends as that process
would; only the seconds of ``import lightning`` are paid once per server instead of once per command."""

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
            [sys.executable, __file__, command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            start_new_session=True,  # its forks in its process group: a timeout stops them all
        )  # fmt: skip

    def run(self, *args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as outputs:
            out, err = Path(outputs, "stdout"), Path(outputs, "stderr")
            request = {"args": list(args), "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            if not select.select([self.process.stdout], [], [], timeout)[0]:
                os.killpg(self.process.pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(args, timeout)
            returncode = int(self.process.stdout.readline())
            return subprocess.CompletedProcess(args, returncode, out.read_text(), err.read_text())

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
            for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.argv = [prog, *request["args"]]
            main()
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1])
