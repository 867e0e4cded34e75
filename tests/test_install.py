"""``make setup``'s install by uv (tools/install.py): pip's settings handed to uv, the machine's cap kept."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

from packaging.requirements import Requirement

from tests.helpers import REPO

SETTINGS = "import json, sys; sys.path.insert(0, 'tools'); import install; print(json.dumps(install.pip_settings()))"


def test_pip_settings_are_read_from_pips_config_files_and_variables_as_pip_ranks_them(tmp_path) -> None:
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\nconstraint = /caps/a.txt /caps/b.txt\nfind-links = /wheels/global\n"
        "timeout = 60\n[install]\nfind-links = /wheels/install\nindex-url = https://mirror.example/simple\n"
    )
    env = {**os.environ, "PIP_CONFIG_FILE": str(config), "PIP_CERT": "/certs/ca.pem"}
    env = {k: v for k, v in env.items() if k not in ("PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_INDEX_URL")}
    printed = subprocess.run([sys.executable, "-c", SETTINGS], cwd=REPO, env=env, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    settings = json.loads(printed.stdout)
    assert settings["constraint"] == ["/caps/a.txt", "/caps/b.txt"]
    assert settings["find-links"] == ["/wheels/install"]  # pip install's own section over [global]
    assert settings["index-url"] == ["https://mirror.example/simple"]
    assert settings["cert"] == ["/certs/ca.pem"]  # a variable over the files
    assert "timeout" not in settings  # not one uv is given

    env["PIP_FIND_LINKS"] = "/wheels/env"
    printed = subprocess.run([sys.executable, "-c", SETTINGS], cwd=REPO, env=env, capture_output=True, text=True)
    assert json.loads(printed.stdout)["find-links"] == ["/wheels/env"]


def test_the_installed_packages_keep_every_cap_of_pips_constraint_files() -> None:
    """What make setup installed by uv obeys the constraints pip would have (this machine's cap on torch)."""
    printed = subprocess.run([sys.executable, "-c", SETTINGS], cwd=REPO, capture_output=True, text=True, check=True)
    caps = [
        Requirement(line.split("#")[0])
        for path in json.loads(printed.stdout).get("constraint", [])
        for line in open(path).read().splitlines()
        if line.split("#")[0].strip()
    ]
    for cap in caps:
        try:
            version = importlib.metadata.version(cap.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        assert cap.specifier.contains(version, prereleases=True), f"{cap.name} {version} breaks the cap {cap}"
