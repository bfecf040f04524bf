"""`await ua.run(...)` in a real Jupyter kernel: live progress in one clean output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_run_simulated import FAST

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


@pytest.mark.slow
def test_a_notebook_cell_shows_progress_and_stays_clean(
    write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    providers = write_yaml(FAST)
    out = tmp_path / "results"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import ultra_async as ua\n"
            "report = await ua.run(models='o3-0416-global,qwen2.5-3b-instruct', instances=4,\n"
            f"                      simulate=True, out={str(out)!r}, providers={str(providers)!r})\n"
            "print(report.summary.completed, 'tests')"
        )
    ]
    nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    displays = [o for o in outputs if o.output_type == "display_data"]
    streams = [o for o in outputs if o.output_type == "stream"]
    assert len(displays) == 1, outputs  # one output, updated in place
    frame = displays[0].data["text/plain"]
    assert "\x1b[" not in frame and "<pre" in displays[0].data["text/html"]
    assert "o3-0416-global" in frame and "qwen2.5-3b-instruct" in frame
    assert "40/40" in frame.replace(" ", "") or "100%" in frame
    assert [(s.name, s.text) for s in streams] == [("stdout", "40 tests\n")]
