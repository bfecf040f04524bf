"""The flags that say what a run evaluates (shared by `plan` and `run`) and their RunOptions."""

from __future__ import annotations

import argparse
from typing import Any

from ..runner import RunOptions
from ..suites.suite import Suite
from .args import MAX_INSTANCES, directory, file_path, whole_number


def add_suite_options(parser: argparse.ArgumentParser) -> None:
    """What to evaluate: the workflow matrix (default), a dataset file or a Python suite."""
    group = parser.add_argument_group("what to evaluate")
    group.add_argument("--models", default="all", help="comma-separated model names, or all")
    group.add_argument(
        "--instances",
        type=whole_number(1, MAX_INSTANCES),
        default=1,
        help=f"test instances per case, 1 to {MAX_INSTANCES:,} (default: 1)",
    )
    group.add_argument(
        "--seed",
        type=whole_number(0, 2**63 - 1),
        default=0,
        help="seed of the run's randomness (and of --sample's choice)",
    )
    group.add_argument(
        "--limit",
        metavar="N",
        type=whole_number(1, 10**9),
        default=None,
        help="a smoke run: at most N cases (after --sample), in the suite's order",
    )
    group.add_argument(
        "--sample",
        metavar="FRACTION",
        type=fraction,
        default=None,
        help="a smoke run: this fraction of the cases, chosen by case id and --seed",
    )
    group.add_argument(
        "--suite",
        metavar="MODULE:ATTR",
        default=None,
        help="a Python suite: module:attribute naming a Suite (or a function returning one)",
    )
    group.add_argument(
        "--dataset",
        metavar="FILE",
        type=file_path,
        default=None,
        help="evaluate the rows of a JSONL or CSV file (input, expected, id, other columns)",
    )
    group.add_argument(
        "--dimensions",
        default="",
        help="dataset columns that become the database's levels, comma-separated",
    )
    group.add_argument(
        "--scorer",
        default="exact",
        help="how a dataset reply is scored: exact, includes, regex, numeric, choice",
    )
    group.add_argument(
        "--tolerance", type=float, default=1e-6, help="numeric scorer: allowed absolute error"
    )
    group.add_argument("--system-prompt", default=None, help="dataset: a system message")
    group.add_argument(
        "--template", default=None, help="dataset: the user message, e.g. 'Q: {input}\\nA:'"
    )
    matrix = parser.add_argument_group("workflow benchmark matrix (the default suite)")
    matrix.add_argument(
        "--prompt-types",
        default="optimal",
        help="comma-separated prompt types, or a group: all (baseline,cot,optimal), "
        "all_with_flawed, flawed (default: optimal)",
    )
    matrix.add_argument(
        "--rates", default="0.8", help="comma-separated tool success rates (default: 0.8)"
    )
    matrix.add_argument(
        "--difficulties",
        default="easy",
        help="comma-separated difficulties, or all (default: easy)",
    )
    matrix.add_argument(
        "--task-types", default="all", help="comma-separated task types, or all (default: all)"
    )


def fraction(text: str) -> float:
    """An argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1] (got {text})")
    return value


def suite_from_args(args: argparse.Namespace) -> Suite | None:
    """The suite the flags name; None for the workflow benchmark over its matrix flags."""
    from ..errors import PlanError

    if args.suite and args.dataset:
        raise PlanError("choose one of --suite and --dataset")
    if args.suite:
        from ..suites.loading import load_suite

        return load_suite(args.suite)
    if args.dataset is not None:
        from ..suites.dataset import dataset_suite

        return dataset_suite(
            args.dataset,
            dimensions=[d for d in args.dimensions.split(",") if d.strip()],
            scorer=args.scorer,
            system_prompt=args.system_prompt,
            template=args.template,
            tolerance=args.tolerance,
        )
    return None


def run_options(args: argparse.Namespace, **extra: Any) -> RunOptions:
    """RunOptions from the suite flags, plus any other fields given."""
    return RunOptions(
        models=args.models,
        instances=args.instances,
        seed=args.seed,
        limit=args.limit,
        sample=args.sample,
        suite=suite_from_args(args),
        prompt_types=args.prompt_types,
        rates=args.rates,
        difficulties=args.difficulties,
        task_types=args.task_types,
        **extra,
    )


def add_recording_options(parser: argparse.ArgumentParser) -> None:
    """`--transcripts`, `--cache`, `--cache-dir` (docs/transcripts-and-cache.md)."""
    parser.add_argument(
        "--transcripts",
        choices=("all", "failures", "none"),
        default="all",
        help="conversations kept beside the journal: all, failures (tests not a completed "
        "full success) or none (default: all)",
    )
    parser.add_argument(
        "--cache",
        choices=("off", "use", "refresh", "only"),
        default="use",
        help="response cache: use (answer repeated requests from it), refresh (send and store "
        "anew), only (never send; a miss is an infra error), off (default: use)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=directory,
        default=None,
        help="a response cache shared across results directories (default: one in --out)",
    )
