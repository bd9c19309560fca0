"""notebooks/walkthrough.ipynb runs end to end in its quick mode (a few hundred faces, one epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferkit.config import default_shared_dir

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e .[dev])")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e .[dev])")
pytest.importorskip("ipykernel", reason="ipykernel is not installed: no python3 kernel (pip install -e .[dev])")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def outputs_of(notebook, marker: str) -> list[dict]:
    """Outputs of the code cell whose source contains `marker`."""
    return next(cell.outputs for cell in notebook.cells if cell.cell_type == "code" and marker in cell.source)


def images_in(outputs) -> int:
    return sum("image/png" in output.get("data", {}) for output in outputs)


@pytest.mark.slow
def test_walkthrough_runs_in_small_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("FERKIT_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel writes its run folder under tempfile's dir
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    assert images_in(outputs_of(notebook, "counts = explore(")) == 2  # samples.png, class_balance.png
    assert images_in(outputs_of(notebook, "augmentation=AUGMENTATIONS")) == 1
    assert "4,478,727" in str(outputs_of(notebook, 'create_model("seed")'))  # model.summary()'s total
    assert images_in(outputs_of(notebook, "metrics = train(cfg)")) == 1  # the live plot, redrawn in place
    assert "model.weights.h5" in str(outputs_of(notebook, "architecture = "))
    assert "predicted:" in str(outputs_of(notebook, "FacialExpressionModel(run_dir"))
    assert images_in(outputs_of(notebook, "PHOTO = ")) == 1
    one_call = str(outputs_of(notebook, "ferkit.analyse(PHOTO"))
    if (default_shared_dir() / "data" / "media" / "photos" / "multi_face.jpg").is_file():
        assert one_call.count("trained here:") == 5  # YuNet's five faces, whatever the one-epoch model says
        assert "accurate: ['happy', 'happy', 'happy', 'happy', 'neutral']" in one_call
    else:
        assert "multi_face.jpg not found" in one_call
