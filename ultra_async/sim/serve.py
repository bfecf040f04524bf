"""Run the simulator on its own: `python -m ultra_async serve-sim`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any

from ..cli.args import bounded_number, whole_number
from ..config import Settings, load_config
from ..errors import ConfigError
from .faults import FAULT_KINDS, FaultRule
from .latency import Latency
from .responders import brain_available, default_responder
from .server import SimServer
from .setup import SimSetup, sim_setup_from_config

#: the longest latency or hang the simulator takes, in seconds (one day)
MAX_SIM_S = 86_400
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


async def serve_forever(
    server: SimServer,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[SimServer], None] | None = None,
) -> None:
    """Run `server` until `stop` is set or the task is cancelled; then shut it down."""
    stop = stop or asyncio.Event()
    async with server:
        if on_ready is not None:
            on_ready(server)
        await stop.wait()


def add_serve_sim_arguments(
    parser: argparse.ArgumentParser, *, providers_option: bool = True
) -> None:
    """The options of `serve-sim`; `providers_option=False` if the caller adds `--providers`."""
    if providers_option:
        parser.add_argument(
            "--providers",
            metavar="PATH",
            default=None,
            help="providers.yaml whose keys, models and limits to simulate "
            "(default: $ULTRA_ASYNC_PROVIDERS or ./providers.yaml)",
        )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than loopback (the simulator's keys are public)",
    )
    parser.add_argument(
        "--port", type=whole_number(0, 65535), default=0, help="port (default: 0, a free one)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of replies, latency and faults")
    parser.add_argument(
        "--latency-ms",
        type=bounded_number(0, MAX_SIM_S * 1000),
        default=0.0,
        help="median response time in ms (default: 0)",
    )
    parser.add_argument(
        "--latency-sigma",
        type=bounded_number(0, 10),
        default=0.5,
        help="lognormal shape of response times",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=P",
        help=f"inject a fault with probability P; KIND is one of {', '.join(FAULT_KINDS)} "
        "(repeatable)",
    )
    parser.add_argument(
        "--hang-s",
        type=bounded_number(0, MAX_SIM_S),
        default=30.0,
        help="how long a 'hang' fault stalls (default: 30)",
    )
    parser.add_argument(
        "--force-status",
        action="append",
        default=[],
        metavar="NAME=STATUS",
        help="answer every request for a deployment or model with STATUS, e.g. "
        "DeepSeek-V3-0324-2=500 (repeatable)",
    )
    parser.add_argument(
        "--revoke", action="append", default=[], metavar="KEY", help="key name to answer with 401"
    )
    parser.add_argument("--no-limits", action="store_true", help="no server-side rate limits")
    parser.add_argument(
        "--burst",
        type=int,
        default=None,
        metavar="N",
        help="burst of every server-side request bucket (default: max(5, the configured burst))",
    )
    parser.add_argument(
        "--simple",
        action="store_true",
        help="every reply is TASK_COMPLETED instead of the simulated model behaviour",
    )


def parse_fault_rules(args: argparse.Namespace) -> list[FaultRule]:
    """`--force-status` and `--fault` as rules; raises ValueError naming the bad option."""
    rules: list[FaultRule] = []
    for item in args.force_status:
        name, _, status = item.partition("=")
        if not name or not status.isdigit():
            raise ValueError(f"--force-status {item!r}: expected NAME=STATUS, e.g. gpt-4o-mini=500")
        rules.append(FaultRule(model=name, status=int(status)))
    probabilities: dict[str, Any] = {}
    for item in args.fault:
        kind, _, value = item.partition("=")
        if kind not in FAULT_KINDS:
            raise ValueError(
                f"--fault {item!r}: unknown kind; choose from {', '.join(FAULT_KINDS)}"
            )
        try:
            probabilities[kind] = float(value)
        except ValueError:
            raise ValueError(
                f"--fault {item!r}: expected KIND=PROBABILITY, e.g. error_500=0.01"
            ) from None
    if probabilities:
        rules.append(FaultRule(hang_s=args.hang_s, **probabilities))
    return rules


def _print_ready(setup: SimSetup, server: SimServer, brain: bool) -> None:
    print(f"simulator listening on {server.base_url}", flush=True)
    print(f"  OpenAI base URL: {server.openai_base_url}")
    print(f"  Azure endpoint:  {server.base_url}")
    print(f"  replies: {'simulated model behaviour' if brain else 'TASK_COMPLETED'}")
    print("  environment for `python -m ultra_async run` (fake keys, accepted only here):")
    for var, value in sorted(setup.environ(server).items()):
        print(f"    export {var}={value}")
    print("  counters: GET /sim/stats; Ctrl-C stops", flush=True)


def run_serve_sim(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; 0 on a clean stop, 2 on bad options or config."""
    if args.host not in _LOOPBACK and not args.allow_remote:
        print(
            f"error: --host {args.host} is not loopback; the simulator's keys are public, "
            "pass --allow-remote to listen there anyway",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(args.providers, Settings())
        if args.burst is not None and args.burst < 1:
            raise ValueError("--burst must be >= 1")
        setup = sim_setup_from_config(config, seed=args.seed, burst=args.burst)
        faults = parse_fault_rules(args)
        latency = Latency(median_ms=args.latency_ms, sigma=args.latency_sigma)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.revoke) - set(setup.secrets))
    if unknown:
        print(f"error: --revoke: unknown key name(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    brain = not args.simple and brain_available()
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "revoked": args.revoke,
        "faults": faults,
        "latency": latency,
    }
    if args.no_limits:
        options["rules"] = ()
    if not brain:
        options["responder"] = default_responder
    server = setup.server(**options)
    try:
        asyncio.run(_serve_until_signal(server, lambda s: _print_ready(setup, s, brain)))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


async def _serve_until_signal(server: SimServer, on_ready: Callable[[SimServer], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # signals are not on every platform
            loop.add_signal_handler(sig, stop.set)
    await serve_forever(server, stop=stop, on_ready=on_ready)
