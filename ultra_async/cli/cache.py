"""The `show` and `cache` commands: one test's transcript; the response cache's size and pruning.

Exit codes: 0 done; 1 the cache could not be read or pruned; 2 no transcript for that item.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any, TextIO

from ..errors import UltraAsyncError
from ..exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ..logs import redact
from ..results import cache_admin as cache
from ..results.transcripts import matching_items, read_transcript
from .args import directory


def _add_dirs(parser: argparse.ArgumentParser, *, cache_dir: bool) -> None:
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=directory,
        default=Path("results"),
        help="results directory (default: results)",
    )
    if cache_dir:
        parser.add_argument(
            "--cache-dir",
            metavar="DIR",
            type=directory,
            default=None,
            help="the shared cache the runs used with --cache-dir (default: the one they recorded)",
        )


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("item_id", metavar="ITEM_ID", help="the test's id, as in results.jsonl")
    _add_dirs(parser, cache_dir=False)
    parser.add_argument(
        "--width", type=int, default=None, help="wrap text at this many columns (default: terminal)"
    )


def _register_configured_keys() -> None:
    """The API keys set in the environment are redacted too, should a message quote one."""
    from ..config import Settings, load_config
    from ..logs import register_secret

    try:
        config = load_config(None, Settings())
    except (UltraAsyncError, OSError):
        return  # no providers.yaml here: key-shaped strings are still redacted
    for variable in config.key_envs().values():
        if value := os.environ.get(variable):
            register_secret(value)


def run_show(args: argparse.Namespace) -> int:
    _register_configured_keys()
    transcript = read_transcript(args.out, args.item_id)
    if transcript is None:
        near = matching_items(args.out, args.item_id)
        hint = f"; transcripts starting so: {', '.join(near)}" if near else ""
        print(
            f"error: no transcript for {args.item_id} in {args.out} (kept with --transcripts "
            f"all, or failures for tests that did not fully succeed){hint}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    width = args.width or min(shutil.get_terminal_size((100, 24)).columns, 120)
    try:
        print_transcript(transcript, sys.stdout, width=max(40, width))
        sys.stdout.flush()
    except BrokenPipeError:
        # `show ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def print_transcript(transcript: dict[str, Any], stream: TextIO, *, width: int = 100) -> None:
    """A transcript as text: each request's new messages, the reply, tokens, failed attempts."""
    requests = transcript["requests"]
    out = stream.write
    head = f"model {transcript['model']} · shard {transcript['shard']} · {len(requests)} requests"
    if transcript["truncated"]:
        head += " · truncated (size cap)"
    out(_wrap(transcript["item_id"], width) + _wrap(head, width))
    for number, request in enumerate(requests, 1):
        facts = [
            f"request {number}",
            f"{request['latency_s']:.3f} s",
            f"{request['input_tokens']} in / {request['output_tokens']} out tokens",
        ]
        if request["finish_reason"]:
            facts.append(str(request["finish_reason"]))
        if request["cached"]:
            facts.append("cached")
        line = f"── {' · '.join(facts)} "
        out("\n" + (line.ljust(width, "─") if len(line) <= width else _wrap(line, width)))
        out("\n" if len(line) <= width else "")
        for message in request["messages"]:
            role = str(message.get("role", "?")) if isinstance(message, dict) else "?"
            content = message.get("content") if isinstance(message, dict) else message
            out(_block(f"[{role}]", content, width))
        for attempt in request["attempts"]:
            status = f" (HTTP {attempt['status']})" if attempt["status"] is not None else ""
            out(_block("[failed attempt]", f"{attempt['error']}{status}", width))
        if request["reply"] is not None:
            out(_block("[reply]", request["reply"], width))
        elif not request["attempts"]:
            out(_block("[reply]", "(not available: its cache entry is gone)", width))


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(redact(text), width)) + "\n"


def _block(label: str, text: Any, width: int) -> str:
    body = redact(text if isinstance(text, str) else str(text))
    lines = [label]
    for paragraph in body.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width - 2, replace_whitespace=False) or [""]
    return "\n  ".join(lines) + "\n"


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="cache_action", metavar="ACTION", required=True)
    stats = actions.add_parser(
        "stats", help="size, entries and hit rate", description="size, entries and hit rate"
    )
    _add_dirs(stats, cache_dir=True)
    prune = actions.add_parser(
        "prune",
        help="drop entries no journal refers to",
        description="drop entries that no test in the journals of the results directories "
        "using this cache refers to",
    )
    _add_dirs(prune, cache_dir=True)


def run_cache(args: argparse.Namespace) -> int:
    try:
        if args.cache_action == "stats":
            report = cache.cache_report(args.out, args.cache_dir)
            for line in report.lines() if report is not None else [cache.NO_CACHE]:
                print(line)
            return EXIT_OK
        path, dropped, kept = cache.prune(args.out, args.cache_dir)
    except UltraAsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{path}: dropped {dropped} entries no journal refers to, kept {kept}")
    return EXIT_OK
