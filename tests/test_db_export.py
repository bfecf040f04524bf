"""Per-leaf exports: rows, columns, and the DataFrame."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.factory import stream
from ultra_async.results.db import render
from ultra_async.results.export import export_columns, leaf_rows, to_dataframe, write_csv
from ultra_async.results.stats import DIMENSIONS, StatsTree


def document() -> dict[str, Any]:
    tree = StatsTree()
    for result in stream():
        tree.add_result(result)
    doc: dict[str, Any] = orjson.loads(b"".join(render(tree, "created")))
    return doc


def test_one_row_per_leaf_with_its_dimensions() -> None:
    doc = document()
    rows = list(leaf_rows(doc))
    assert len(rows) == 24
    assert list(rows[0]) == list(export_columns(doc))
    cells = {(r.model, *(r.labels[d] for d in DIMENSIONS[1:])) for r in stream()}
    assert {tuple(r[d] for d in DIMENSIONS) for r in rows} == cells
    assert sum(r["total"] for r in rows) == 72


def test_csv_has_a_header_and_a_line_per_leaf() -> None:
    buffer = io.StringIO()
    assert write_csv(document(), buffer) == 24
    lines = buffer.getvalue().splitlines()
    assert lines[0].split(",")[:5] == list(DIMENSIONS) and len(lines) == 25


def test_dataframe(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    frame = to_dataframe(document())
    assert isinstance(frame, pandas.DataFrame)
    assert frame.shape == (24, len(export_columns(document())))
    assert frame["total"].sum() == 72


def test_dataframe_without_pandas_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError, match=r"ultra_async\[analysis\]"):
        to_dataframe(document())
