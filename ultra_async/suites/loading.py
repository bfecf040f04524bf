"""Suites named on the command line: `--suite module:attribute` and `--dataset FILE`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ..errors import PlanError
from .suite import Suite


def load_suite(spec: str) -> Suite:
    """The Suite at `module:attribute` (a Suite, or a function without arguments returning one).

    The module is imported from the current directory or the installed packages; a file path
    (`evals/my_suite.py:SUITE`) works too.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PlanError(f"--suite {spec!r}: write it as module:attribute, e.g. my_evals:SUITE")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise PlanError(f"--suite {spec!r}: no file {path}")
        sys.path.insert(0, str(path.parent.resolve()))
        module_name = path.stem
    elif "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PlanError(f"--suite {spec!r}: cannot import {module_name}: {exc}") from None
    except Exception as exc:  # the user's module failed while importing
        raise PlanError(
            f"--suite {spec!r}: importing {module_name} raised {type(exc).__name__}: {exc}"
        ) from None
    target = getattr(module, attribute, None)
    if target is None:
        raise PlanError(f"--suite {spec!r}: {module_name} has no attribute {attribute!r}")
    if callable(target) and not isinstance(target, Suite):
        try:
            target = target()
        except Exception as exc:
            raise PlanError(
                f"--suite {spec!r}: calling {attribute}() raised {type(exc).__name__}: {exc}"
            ) from None
    if not isinstance(target, Suite):
        raise PlanError(f"--suite {spec!r}: {attribute} is a {type(target).__name__}, not a Suite")
    return target
