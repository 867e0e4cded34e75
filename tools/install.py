"""``make setup``'s install of lab-cnn with its dev extra into the venv this Python is in, by uv.

uv installs the 8.5 GB of packages in 84 s where pip took 255 s on the 2-core development machine, the same
packages at the same versions (``make bench-setup``, benchmarks/RESULTS.md): it unpacks and compiles in
parallel. uv reads none of pip's settings, so pip's own (its config files and PIP_* variables, as ``pip config
list`` shows them; on this project's machines a cap on torch's version and folders of local wheels) are handed
to it, and it picks versions by pip's rule, the best one from any index (uv's ``unsafe-best-match``). Where uv
cannot be installed, pip installs as before.

    .venv/bin/python tools/install.py
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
UV_OPTIONS = {  # pip's setting: uv's option
    "constraint": "--constraints",
    "index-url": "--default-index",
    "extra-index-url": "--index",
    "find-links": "--find-links",
    "cert": "--cert",
}


def pip_settings() -> dict[str, list[str]]:
    """What pip would install with: each setting of UV_OPTIONS and its values (an environment variable over
    the config files, as pip has it)."""
    printed = subprocess.run([*PIP, "config", "list"], capture_output=True, text=True, check=True).stdout
    found: dict[str, dict[str, list[str]]] = {}
    for line in printed.splitlines():  # global.find-links='/opt/wheels', install.constraint=..., :env:.cert=...
        where, _, value = line.partition("=")
        section, _, name = where.rpartition(".")
        if name in UV_OPTIONS and section in (":env:", "global", "install"):
            found.setdefault(name, {})[section] = ast.literal_eval(value).split()
    return {name: by.get(":env:") or by.get("install") or by["global"] for name, by in found.items()}


def main() -> None:
    if subprocess.run([*PIP, "install", "-q", "uv>=0.9"]).returncode != 0:
        print("tools/install.py: uv could not be installed; pip installs lab-cnn instead (slower)", file=sys.stderr)
        subprocess.run([*PIP, "install", "-q", "-e", f"{REPO}[dev]"], check=True)
        return
    options = [f"{UV_OPTIONS[name]}={value}" for name, values in pip_settings().items() for value in values]
    uv = Path(sys.executable).parent / "uv"
    command = [str(uv), "pip", "install", "-q", "--python", sys.executable, "--compile-bytecode", *options]
    subprocess.run([*command, "--index-strategy", "unsafe-best-match", "-e", f"{REPO}[dev]"], check=True)


if __name__ == "__main__":
    main()
