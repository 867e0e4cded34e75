"""``make setup``'s install of lab-cnn with its dev extra into the venv this Python is in, by uv.

uv installs the 8.5 GB of packages in 84 s where pip took 255 s on the 2-core development machine, the same
packages at the same versions (``make bench-setup``, benchmarks/RESULTS.md): it unpacks and compiles in
parallel. uv reads none of pip's settings, so pip's own (its config files and PIP_* variables, as ``pip config
list`` shows them; on this project's machines a cap on torch's version and folders of local wheels) are handed
to it, and it picks versions by pip's rule, the best one from any index (uv's ``unsafe-best-match``). Where uv
cannot be installed, fails, or is not given one of pip's settings, pip installs as before.

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
LISTS = {"constraint", "extra-index-url", "find-links"}  # the settings pip reads as several values
NOT_FOR_UV = {"default-timeout", "timeout", "disable-pip-version-check", "progress-bar", "no-color", "retries"}


def pip_settings() -> dict[str, list[str]]:
    """What pip would install with: each of its settings and its values (an environment variable over pip
    install's section over the global one, as pip has it)."""
    printed = subprocess.run([*PIP, "config", "list"], capture_output=True, text=True, check=True).stdout
    found: dict[str, dict[str, list[str]]] = {}
    for line in printed.splitlines():  # global.find-links='/opt/wheels', install.constraint=..., :env:.cert=...
        where, _, value = line.partition("=")
        section, _, name = where.rpartition(".")
        if section in (":env:", "global", "install"):
            text = ast.literal_eval(value)
            found.setdefault(name, {})[section] = text.split() if name in LISTS else [text]
    return {name: by.get(":env:") or by.get("install") or by["global"] for name, by in found.items()}


def uv_install(settings: dict[str, list[str]]) -> str | None:
    """lab-cnn installed by uv with pip's ``settings``; why not, when it was not."""
    untranslated = sorted(set(settings) - set(UV_OPTIONS) - NOT_FOR_UV)
    if untranslated:
        return f"pip's setting {', '.join(untranslated)} has no counterpart given to uv here"
    if subprocess.run([*PIP, "install", "-q", "uv>=0.13"]).returncode != 0:  # 0.13: `uv pip install --cert`
        return "uv could not be installed"
    options = [
        f"{UV_OPTIONS[name]}={value}" for name, values in settings.items() if name in UV_OPTIONS for value in values
    ]
    command = [sys.executable, "-m", "uv", "pip", "install", "-q", "--python", sys.executable, "--compile-bytecode"]
    command += [*options, "--index-strategy", "unsafe-best-match", "-e", f"{REPO}[dev]"]
    return None if subprocess.run(command).returncode == 0 else "uv's install failed (above)"


def main() -> None:
    why_not = uv_install(pip_settings())
    if why_not is not None:
        print(f"tools/install.py: {why_not}; pip installs lab-cnn instead (slower)", file=sys.stderr)
        subprocess.run([*PIP, "install", "-q", "-e", f"{REPO}[dev]"], check=True)


if __name__ == "__main__":
    main()
