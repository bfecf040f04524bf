"""Serialisations of the statistics: the database document, and per-leaf CSV, JSONL, DataFrame."""

from __future__ import annotations

import csv
import importlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import DatabaseError
from .stats import (
    DIMENSIONS,
    INFRA,
    LEAF_DEPTH,
    LEVEL_KEYS,
    NODE_FIELDS,
    SCHEMA_VERSION,
    TOTAL,
    WIDTH,
    NodePath,
    Snapshot,
    Vector,
    node_fields,
)


def summary_fields(root: Vector, models: int, leaves: int) -> dict[str, Any]:
    """The root `summary`: coverage at a glance (items = completed tests + open infra errors)."""
    fields = node_fields(root)
    return {
        "models": models,
        "leaves": leaves,
        "items": root[TOTAL] + root[INFRA],
        "total": root[TOTAL],
        "infra_errors": root[INFRA],
        "success_rate": fields["success_rate"],
        "weighted_success_score": fields["weighted_success_score"],
        "avg_final_score": fields["avg_final_score"],
    }


_CHILD_KEYS = tuple(b',"' + key.encode() + b'":' for key in LEVEL_KEYS)


class DatabaseDocument:
    """Bytes of the master database, assembled from per-node fragments kept between writes.

    Only nodes in a snapshot are re-rendered, and each group of leaves is kept as bytes until
    one of them changes, so a write costs little more than what changed plus a copy. Not
    thread-safe: one writer thread owns it.
    """

    def __init__(self, created_at: str) -> None:
        self.created_at = created_at
        #: each node's statistics as JSON, and its key as `"name":`
        self._fragments: dict[NodePath, bytes] = {}
        self._keys: dict[NodePath, bytes] = {}
        # Tuples, not lists: the garbage collector skips tuples of strings, and a long run
        # keeps thousands of these alive.
        self._children: dict[NodePath, tuple[NodePath, ...]] = {}
        self._unsorted: set[NodePath] = set()
        #: the `by_task_type` object of each difficulty node, while none of its leaves changes
        self._groups: dict[NodePath, bytes] = {}
        self._root: Vector = (0,) * WIDTH
        self._imports = b"[]"
        self._leaves = 0

    def update(self, snap: Snapshot) -> None:
        """Take in the nodes a snapshot holds."""
        children = self._children
        for path in snap.added:
            if len(path) < LEAF_DEPTH:
                children.setdefault(path, ())
            if path:
                self._keys[path] = orjson.dumps(path[-1]) + b":"
                children[path[:-1]] += (path,)
                self._unsorted.add(path[:-1])
                self._leaves += len(path) == LEAF_DEPTH
        for path, vector in snap.changed.items():
            self._fragments[path] = orjson.dumps(node_fields(vector))
            if len(path) == LEAF_DEPTH - 1:
                self._groups.pop(path, None)
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
            "summary": summary_fields(self._root, len(self._children.get((), ())), self._leaves),
        }
        out = [orjson.dumps(header)[:-1], b',"overall_stats":', self._fragments[()]]
        out += [b',"imports":', self._imports, _CHILD_KEYS[0]]
        self._emit((), out)
        out.append(b"}")
        return out

    def _emit(self, path: NodePath, out: list[bytes]) -> None:
        keys, fragments = self._keys, self._fragments
        if len(path) == LEAF_DEPTH - 1:
            group = self._groups.get(path)
            if group is None:
                leaves = b",".join([keys[leaf] + fragments[leaf] for leaf in self._children[path]])
                group = self._groups[path] = b"{" + leaves + b"}"
            out.append(group)
            return
        child_key = _CHILD_KEYS[len(path) + 1]
        separator = b"{"
        for child in self._children[path]:
            out += [separator, keys[child], b'{"overall_stats":', fragments[child], child_key]
            self._emit(child, out)
            out.append(b"}")
            separator = b","
        out.append(b"{}" if separator == b"{" else b"}")


#: the dimensions below `model` of a database that does not name its own (the workflow suite)
WORKFLOW_DIMENSIONS: tuple[str, ...] = DIMENSIONS[1:]


def dimensions_of(db: Mapping[str, Any]) -> tuple[str, ...]:
    """The dimensions of a leaf's path, model first: the root's `dimensions`, or the workflow's."""
    named = db.get("dimensions")
    if named is None:
        return DIMENSIONS
    if not (isinstance(named, list) and all(isinstance(d, str) and d for d in named)):
        raise DatabaseError("the database's `dimensions` is not a list of names")
    return ("model", *named)


def iter_leaves(
    db: Mapping[str, Any], dimensions: Sequence[str] | None = None
) -> Iterator[tuple[NodePath, dict[str, Any]]]:
    """Every leaf of a database document with its path, in key order.

    The path is `models/<model>/by_<dim>/<value>/...` over `dimensions` (model first; default:
    the database's own, see `dimensions_of`).
    """
    dims = tuple(dimensions) if dimensions is not None else dimensions_of(db)
    level_keys = ("models", *(f"by_{d}" for d in dims[1:]))
    depth = len(dims)

    def walk(node: Mapping[str, Any], path: NodePath) -> Iterator[tuple[NodePath, dict[str, Any]]]:
        if len(path) == depth:
            yield path, dict(node)
            return
        key = level_keys[len(path)]
        children = node.get(key)
        if not isinstance(children, Mapping):
            raise DatabaseError(f"node {'/'.join(path) or 'root'} has no {key}")
        for name in sorted(children):
            yield from walk(children[name], (*path, name))

    yield from walk(db, ())


def leaf_rows(db: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One flat row per leaf: the path's dimensions, then every statistics field.

    A workflow database gives NODE_FIELDS in order; another suite's leaves give their own fields.
    """
    dims = dimensions_of(db)
    workflow = dims == DIMENSIONS
    for path, leaf in iter_leaves(db, dims):
        row: dict[str, Any] = dict(zip(dims, path, strict=True))
        if workflow:
            row.update((name, leaf.get(name)) for name in NODE_FIELDS)
        else:
            row.update((k, v) for k, v in leaf.items() if k not in row)
        yield row


EXPORT_COLUMNS: tuple[str, ...] = (*DIMENSIONS, *NODE_FIELDS)


def export_columns(db: Mapping[str, Any]) -> list[str]:
    """The columns of `leaf_rows(db)`: EXPORT_COLUMNS for the workflow suite."""
    dims = dimensions_of(db)
    if dims == DIMENSIONS:
        return list(EXPORT_COLUMNS)
    columns = list(dims)
    for _, leaf in iter_leaves(db, dims):
        columns += [k for k in leaf if k not in columns]
    return columns


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
    return pandas.DataFrame(list(leaf_rows(db)), columns=export_columns(db))
