"""The results viewer: `python -m ultra_async view --out DIR` serves a page on 127.0.0.1.

The page (static/viewer.html and viewer.js, shipped with the package) draws the model ×
dimension heatmap of any dimension and metric, with n and a 95 % interval per cell; a click on a
cell lists its tests (from the journal), a click on a test shows its transcript. Infra, request
and evaluate errors are grouped by cause. While a run writes to DIR, the page polls and shows
progress per model and shard. `report --html FILE` writes the same page as one file, its data
embedded, for sharing.

Exit codes of `view`: 0 stopped with Ctrl-C; 2 the port is taken or not allowed; 3 no results
in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ..cli.args import directory
from ..config import Settings
from ..errors import DatabaseError
from ..exitcodes import EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE
from ..results.storage import DATABASE_FILE, JOURNAL_FILE
from .viewdata import JournalIndex, cell_tests, index_for, payload

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: the most transcript bytes (encoded JSON) one HTML file embeds; failures are embedded first
HTML_TRANSCRIPT_BYTES = 20 * 1024 * 1024
#: and at most this many transcripts
HTML_TRANSCRIPTS = 5000


def _static(name: str) -> str:
    return files("ultra_async.report").joinpath("static", name).read_text(encoding="utf-8")


def transcript_reader() -> Callable[[Path, str], dict[str, Any] | None] | None:
    """`results.transcripts.read_transcript`, or None in a build that stores no transcripts."""
    try:
        module = importlib.import_module("ultra_async.results.transcripts")
    except ImportError:
        return None
    reader: Callable[[Path, str], dict[str, Any] | None] = module.read_transcript
    return reader


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def make_app(out: Path) -> web.Application:
    """The viewer's routes for the results in `out` (read on every request: a run may write)."""
    state: dict[bool, JournalIndex] = {}

    def index() -> JournalIndex:
        # Made afresh once the database appears (a run that just started), so the tests are
        # labelled with the database's dimensions.
        has_db = (out / DATABASE_FILE).exists()
        current = state.get(has_db)
        if current is None:
            state.clear()
            current = state[has_db] = index_for(out)
        return current

    async def page(request: web.Request) -> web.Response:
        html = _static("viewer.html").replace("/*EMBED*/", "")
        return web.Response(text=html, content_type="text/html")

    async def script(request: web.Request) -> web.Response:
        return web.Response(text=_static("viewer.js"), content_type="application/javascript")

    async def data(request: web.Request) -> web.Response:
        try:
            body = await asyncio.to_thread(payload, out, index())
        except DatabaseError as exc:
            return _json({"error": str(exc)}, status=500)
        return _json(body)

    async def tests(request: web.Request) -> web.Response:
        q = request.query
        missing = [k for k in ("model", "dimension", "value") if k not in q]
        if missing:
            return _json({"error": f"missing query parameter {missing[0]}"}, status=400)
        journal = index()
        await asyncio.to_thread(journal.refresh)
        found = cell_tests(journal.tests.values(), q["model"], q["dimension"], q["value"])
        return _json({"tests": found})

    async def transcript(request: web.Request) -> web.Response:
        item_id = request.query.get("item_id")
        if not item_id:
            return _json({"error": "missing query parameter item_id"}, status=400)
        journal = index()
        test = journal.tests.get(item_id)
        read = transcript_reader()
        if read is None:
            body = {"error": "this version of ultra_async stores no transcripts", "test": test}
            return _json(body, status=404)
        found = await asyncio.to_thread(read, out, item_id)
        if found is None:
            body = {"error": f"no transcript stored for {item_id}", "test": test}
            return _json(body, status=404)
        return _json({"transcript": found, "test": test})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/viewer.js", script)
    app.router.add_get("/api/data", data)
    app.router.add_get("/api/tests", tests)
    app.router.add_get("/api/transcript", transcript)
    return app


@contextlib.asynccontextmanager
async def serving(out: Path, port: int = DEFAULT_PORT) -> Any:
    """Serve the viewer on 127.0.0.1:`port` (0: any free port) while the body runs; yields
    the page's URL."""
    runner = web.AppRunner(make_app(out), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        yield f"http://{HOST}:{bound}/"
    finally:
        await runner.cleanup()


def html_document(out: Path, *, by: str | None = None, metric: str | None = None) -> str:
    """The viewer as one self-contained HTML page, with the results of `out` embedded."""
    journal = index_for(out)
    data = payload(out, journal)
    data["progress"] = None  # a file is a snapshot: no run is followed
    tests = list(journal.tests.values())
    embedded: dict[str, Any] = {
        "data": data,
        "tests": tests,
        "transcripts": _transcripts(out, tests),
        "by": by,
        "metric": metric,
    }
    # `</` inside the JSON cannot end the script element
    blob = orjson.dumps(embedded).decode().replace("</", "<\\/")
    html = _static("viewer.html")
    html = html.replace(
        '<script src="viewer.js"></script>', f"<script>{_static('viewer.js')}</script>"
    )
    return html.replace("/*EMBED*/", f"window.UA_EMBED = {blob};")


def _transcripts(out: Path, tests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    read = transcript_reader()
    if read is None:
        return {}
    found: dict[str, Any] = {}
    budget = HTML_TRANSCRIPT_BYTES
    # failures first: they are what a reader opens
    for test in sorted(tests, key=_failures_first)[:HTML_TRANSCRIPTS]:
        transcript = read(out, test["item_id"])
        if transcript is None:
            continue
        size = len(orjson.dumps(transcript))
        if size > budget:
            continue
        budget -= size
        found[test["item_id"]] = transcript
    return found


def _failures_first(test: Mapping[str, Any]) -> bool:
    return bool(test["outcome"] == "completed" and test["level"] != "failure")


def write_html(out: Path, path: Path, *, by: str | None = None, metric: str | None = None) -> None:
    """Write the self-contained viewer of `out` to `path` (OSError when it cannot be written)."""
    Path(path).write_text(html_document(out, by=by, metric=metric), encoding="utf-8")


# ---- the command ----------------------------------------------------------------------------


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `view` options to `parser`."""
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=directory,
        default=None,
        help="results directory (default: $ULTRA_ASYNC_OUT or results/; results/demo after "
        "`make run`); it may still be written by a run",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default: {DEFAULT_PORT}; 0 picks a free one)",
    )


def run_view(args: argparse.Namespace) -> int:
    """Serve the viewer until Ctrl-C; returns the exit code."""
    from .tables import find_results

    explicit = args.out is not None
    out = find_results(Path(args.out) if explicit else Settings().out, explicit)
    if not ((out / DATABASE_FILE).exists() or (out / JOURNAL_FILE).exists()):
        print(
            f"error: no results in {out}; run an evaluation first "
            f"(`python -m ultra_async run --out {out} ...`) or pass --out DIR",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    if not 0 <= args.port <= 65535:
        print(f"error: --port {args.port} is not a port number (0-65535)", file=sys.stderr)
        return EXIT_USAGE

    async def serve() -> None:
        async with serving(out, args.port) as url:
            print(f"viewer of {out} at {url} (Ctrl-C stops it)", flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except OSError as exc:
        print(
            f"error: cannot listen on {HOST}:{args.port}: {exc.strerror or exc}; "
            "choose another --port",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
