"""notebooks/lab.ipynb, executed top to bottom in a real Jupyter kernel (nbclient, ipykernel) with short settings."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.helpers import CONFIGS, DATA_DIR, REPO

SHORT = "EPOCHS = 1\nLIMIT = 20\nSEEDS = 2\nSTUDY_EPOCHS = 1"


def test_the_lab_notebook_runs_top_to_bottom(tmp_path, monkeypatch) -> None:
    notebook = nbformat.read(REPO / "notebooks" / "lab.ipynb", as_version=4)
    settings = next(cell for cell in notebook.cells if cell.source.startswith("EPOCHS = "))
    settings.source = SHORT  # the same names, short values: the cells after it run as a student's would
    shutil.copytree(CONFIGS, tmp_path / "configs")
    (tmp_path / "data").symlink_to(DATA_DIR)
    # The kernel is the venv's: its kernelspec runs the first `python` on PATH.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = {i: cell.get("outputs", []) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    text = "".join(o.get("text", "") for cell in outputs.values() for o in cell)
    images = [o for cell in outputs.values() for o in cell if "image/png" in o.get("data", {})]
    assert "test accuracy" in text and "misclassified test digits" in text
    assert len(images) == 2  # the curves and the misclassified digits, inline
    assert "| Max pooling gives better test accuracy than average pooling |" in text  # the study's verdict
    assert sorted(p.name for p in (tmp_path / "lightning_logs" / "notebook").iterdir()) == ["baseline", "fc25"]
    assert not [o for cell in outputs.values() for o in cell if o.get("output_type") == "error"]
