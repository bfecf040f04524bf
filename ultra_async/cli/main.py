"""Command line: parse arguments, load the config, call the library; exit codes. No business logic.

Exit codes: 0 success, 1 the run finished with problems, 2 bad input (config, flags),
130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Sequence

from ..errors import ConfigError, PlanError, UltraAsyncError
from ..exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from ..logs import redact
from .commands import COMMANDS
from .parser import build_parser, reference_markdown

__all__ = ["INTERRUPTED", "build_parser", "main", "reference_markdown"]

INTERRUPTED = "interrupted: run the same command again to finish the remaining tests"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout is not a file descriptor (a test's capture): nothing will flush it


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Objects alive after start-up live for the whole run: keep them out of every collection,
    # so a full GC pass does not stall the event loop for tens of milliseconds.
    gc.collect()
    gc.freeze()
    _help, _add, handler = COMMANDS[args.command]
    try:
        return handler(args)
    except (ConfigError, PlanError) as exc:
        text = f"error: {exc}" if isinstance(exc, PlanError) else str(exc)
        print(redact(text), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `report | head`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again, and end quietly with 1, as rich does.
        _silence_stdout()
        return EXIT_FAILED
    except UltraAsyncError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        # a bug: its traceback helps, but without local variables and without a secret
        print(redact(traceback.format_exc()).rstrip(), file=sys.stderr)
        return EXIT_FAILED
