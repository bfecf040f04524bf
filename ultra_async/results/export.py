"""Serialisations of the statistics: the database document, and per-leaf CSV, JSONL, DataFrame."""

from __future__ import annotations

import csv
import importlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import DatabaseError
from .layout import Layout, layout_of_database
from .stats import Snapshot
from .vectors import INFRA, SCHEMA_VERSION, TOTAL, WORKFLOW, NodePath, Vector, node_fields


def summary_fields(
    root: Vector, models: int, leaves: int, layout: Layout = WORKFLOW
) -> dict[str, Any]:
    """The root `summary`: coverage at a glance (items = tests with a record of any kind)."""
    fields = node_fields(root, layout)
    out = {
        "models": models,
        "leaves": leaves,
        "items": root[TOTAL] + root[INFRA] + fields["request_errors"] + fields["evaluate_errors"],
        "total": root[TOTAL],
        "infra_errors": root[INFRA],
        "request_errors": fields["request_errors"],
        "evaluate_errors": fields["evaluate_errors"],
        "success_rate": fields["success_rate"],
        "weighted_success_score": fields["weighted_success_score"],
    }
    score = "avg_final_score" if layout.workflow else "avg_score"
    if score in fields:
        out[score] = fields[score]
    return out


#: nodes rendered between two moments the writer thread lets the event loop run
_YIELD_EVERY = 64


class DatabaseDocument:
    """Bytes of the master database, assembled from per-node fragments kept between writes.

    Only nodes in a snapshot are re-rendered, and each group of leaves is kept as bytes until
    one of them changes, so a write costs little more than what changed plus a copy. Not
    thread-safe: one writer thread owns it.
    """

    def __init__(self, created_at: str, layout: Layout = WORKFLOW) -> None:
        self.created_at = created_at
        self.layout = layout
        self._depth = layout.depth
        self._child_keys = tuple(b',"' + key.encode() + b'":' for key in layout.level_keys)
        #: each node's statistics as JSON, and its key as `"name":`
        self._fragments: dict[NodePath, bytes] = {}
        self._keys: dict[NodePath, bytes] = {}
        # Tuples, not lists: the garbage collector skips tuples of strings, and a long run
        # keeps thousands of these alive.
        self._children: dict[NodePath, tuple[NodePath, ...]] = {}
        self._unsorted: set[NodePath] = set()
        #: the `by_task_type` object of each difficulty node, while none of its leaves changes
        self._groups: dict[NodePath, bytes] = {}
        self._root: Vector = (0,) * layout.width
        self._imports = b"[]"
        self._leaves = 0

    def update(self, snap: Snapshot) -> None:
        """Take in the nodes a snapshot holds."""
        children = self._children
        for path in snap.added:
            if len(path) < self._depth:
                children.setdefault(path, ())
            if path:
                self._keys[path] = orjson.dumps(path[-1]) + b":"
                children[path[:-1]] += (path,)
                self._unsorted.add(path[:-1])
                self._leaves += len(path) == self._depth
        layout = self.layout
        for done, (path, vector) in enumerate(snap.changed.items(), 1):
            self._fragments[path] = orjson.dumps(node_fields(vector, layout))
            if len(path) == self._depth - 1:
                self._groups.pop(path, None)
            if not done % _YIELD_EVERY:
                # In the writer thread: a large snapshot would hold the interpreter for tens
                # of milliseconds at a time; the event loop's thread gets it back at once here.
                time.sleep(0)
        self._root = snap.changed.get((), self._root)
        self._imports = orjson.dumps(snap.imports)

    def chunks(self, last_updated: str) -> list[bytes]:
        """The whole document as a list of byte strings (keys sorted, so it is reproducible)."""
        for path in self._unsorted:
            self._children[path] = tuple(sorted(self._children[path], key=lambda p: p[-1]))
        self._unsorted.clear()
        header = {
            "version": SCHEMA_VERSION,
            "created_at": self.created_at,
            "last_updated": last_updated,
            **self.layout.header(),
            "summary": summary_fields(
                self._root, len(self._children.get((), ())), self._leaves, self.layout
            ),
        }
        out = [orjson.dumps(header)[:-1], b',"overall_stats":', self._fragments[()]]
        out += [b',"imports":', self._imports, self._child_keys[0]]
        self._emit((), out)
        out.append(b"}")
        return out

    def _emit(self, path: NodePath, out: list[bytes]) -> None:
        keys, fragments = self._keys, self._fragments
        if len(path) == self._depth - 1:
            group = self._groups.get(path)
            if group is None:
                leaves = b",".join([keys[leaf] + fragments[leaf] for leaf in self._children[path]])
                group = self._groups[path] = b"{" + leaves + b"}"
            out.append(group)
            return
        child_key = self._child_keys[len(path) + 1]
        separator = b"{"
        for child in self._children[path]:
            out += [separator, keys[child], b'{"overall_stats":', fragments[child], child_key]
            self._emit(child, out)
            out.append(b"}")
            separator = b","
        out.append(b"{}" if separator == b"{" else b"}")


def dimensions_of(db: Mapping[str, Any]) -> tuple[str, ...]:
    """The path of a leaf in a database document: "model", then the suite's dimensions."""
    return ("model", *layout_of_database(db).dimensions)


def iter_leaves(db: Mapping[str, Any]) -> Iterator[tuple[NodePath, dict[str, Any]]]:
    """Every leaf of a database document with its path, in key order."""
    layout = layout_of_database(db)
    depth, level_keys = layout.depth, layout.level_keys

    def walk(node: Mapping[str, Any], path: NodePath) -> Iterator[tuple[NodePath, dict[str, Any]]]:
        if len(path) == depth:
            yield path, dict(node)
            return
        children = node.get(level_keys[len(path)])
        if not isinstance(children, Mapping):
            raise DatabaseError(f"node {'/'.join(path) or 'root'} has no {level_keys[len(path)]}")
        for name in sorted(children):
            yield from walk(children[name], (*path, name))

    yield from walk(db, ())


def export_columns(db: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns of a per-leaf export: the path's dimensions, then every statistics field."""
    layout = layout_of_database(db)
    return (*dimensions_of(db), *node_fields((0,) * layout.width, layout))


def leaf_rows(db: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One flat row per leaf: the path's dimensions, then every statistics field."""
    dims = dimensions_of(db)
    fields = export_columns(db)[len(dims) :]
    for path, leaf in iter_leaves(db):
        row: dict[str, Any] = dict(zip(dims, path, strict=True))
        row.update((name, leaf.get(name)) for name in fields)
        yield row


def write_csv(db: Mapping[str, Any], stream: IO[str]) -> int:
    """Write one CSV row per leaf (with a header); returns the number of rows."""
    writer = csv.DictWriter(stream, fieldnames=export_columns(db), lineterminator="\n")
    writer.writeheader()
    rows = 0
    for row in leaf_rows(db):
        writer.writerow(row)
        rows += 1
    return rows


def write_jsonl(db: Mapping[str, Any], stream: IO[str]) -> int:
    """Write one JSON object per leaf per line; returns the number of rows."""
    rows = 0
    for row in leaf_rows(db):
        stream.write(orjson.dumps(row).decode() + "\n")
        rows += 1
    return rows


def to_dataframe(db: Mapping[str, Any] | Path | str) -> Any:
    """A pandas DataFrame with one row per leaf (needs pandas: `pip install ultra_async[analysis]`).

    Accepts a database document, its path, or an output directory.
    """
    try:
        pandas = importlib.import_module("pandas")
    except ImportError:
        raise ImportError(
            "to_dataframe needs pandas; install it with `pip install 'ultra_async[analysis]'`"
        ) from None
    if not isinstance(db, Mapping):
        from .storage import DATABASE_FILE, read_database

        path = Path(db)
        db = read_database(path / DATABASE_FILE if path.is_dir() else path)
    return pandas.DataFrame(list(leaf_rows(db)), columns=list(export_columns(db)))
