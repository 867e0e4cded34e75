"""``make setup``'s install by uv (tools/install.py): pip's settings handed to uv, the machine's cap kept."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from tests.helpers import REPO

SETTINGS = "import json, sys; sys.path.insert(0, 'tools'); import install; print(json.dumps(install.pip_settings()))"


def test_pip_settings_are_read_from_pips_config_files_and_variables_as_pip_ranks_them(tmp_path) -> None:
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\nconstraint = /caps/a.txt /caps/b.txt\nfind-links = /wheels/global\n"
        "timeout = 60\n[install]\nfind-links = /wheels/install\nindex-url = https://mirror.example/simple\n"
    )
    env = {**os.environ, "PIP_CONFIG_FILE": str(config), "PIP_CERT": "/my certs/ca.pem"}
    env = {k: v for k, v in env.items() if k not in ("PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_INDEX_URL")}
    printed = subprocess.run([sys.executable, "-c", SETTINGS], cwd=REPO, env=env, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    settings = json.loads(printed.stdout)
    assert settings["constraint"] == ["/caps/a.txt", "/caps/b.txt"]
    assert settings["find-links"] == ["/wheels/install"]  # pip install's own section over [global]
    assert settings["index-url"] == ["https://mirror.example/simple"]
    assert settings["cert"] == ["/my certs/ca.pem"]  # a variable over the files; one value, spaces and all
    assert settings["timeout"] == ["60"]

    env["PIP_FIND_LINKS"] = "/wheels/env"
    printed = subprocess.run([sys.executable, "-c", SETTINGS], cwd=REPO, env=env, capture_output=True, text=True)
    assert json.loads(printed.stdout)["find-links"] == ["/wheels/env"]


def test_a_pip_setting_uv_is_not_given_leaves_the_install_to_pip() -> None:
    """``no-index`` (or any setting not translated) would be dropped by uv: pip installs instead, said in one
    line, and uv is not even installed for it."""
    spec = importlib.util.spec_from_file_location("install", REPO / "tools" / "install.py")
    assert spec is not None and spec.loader is not None
    install = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install)
    settings = {"no-index": ["true"], "constraint": ["/caps/a.txt"], "timeout": ["60"]}
    assert install.uv_install(settings) == "pip's setting no-index has no counterpart given to uv here"


def test_the_installed_packages_keep_every_cap_of_pips_constraint_files() -> None:
    """What make setup installed by uv obeys the constraints pip would have; on this project's machines that
    includes the cap on torch's version (/etc/xdg/pip), which must be found among them."""
    printed = subprocess.run([sys.executable, "-c", SETTINGS], cwd=REPO, capture_output=True, text=True, check=True)
    files = json.loads(printed.stdout).get("constraint", [])
    machine_cap = Path("/etc/xdg/pip/constraints.txt")
    if machine_cap.is_file():
        assert str(machine_cap) in files
    caps = [
        Requirement(line.split("#")[0])
        for path in {*files, *([str(machine_cap)] if machine_cap.is_file() else [])}
        for line in open(path).read().splitlines()
        if line.split("#")[0].strip()
    ]
    for cap in caps:
        try:
            version = importlib.metadata.version(cap.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        assert cap.specifier.contains(version, prereleases=True), f"{cap.name} {version} breaks the cap {cap}"
