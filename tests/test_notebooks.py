"""The notebooks run top to bottom (as `jupyter execute notebooks/*.ipynb` would), each in a folder of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_the_three_notebooks_the_readme_names():
    assert [p.name for p in NOTEBOOKS] == [
        "01_chapter1_cat_brain.ipynb", "02_regressors.ipynb", "03_your_own_data.ipynb",
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_runs_top_to_bottom(notebook, tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="the dev extra brings nbformat, nbclient and ipykernel")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    document = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(document, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()
    errors = [out for cell in document.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    assert list(tmp_path.iterdir()) == []  # each notebook works in a temporary folder of its own
