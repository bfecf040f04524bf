"""The standalone simulator: options, fault parsing, serve_forever and the serve-sim process."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from ultra_async.sim import (
    FaultRule,
    SimServer,
    add_serve_sim_arguments,
    parse_fault_rules,
    run_serve_sim,
    serve_forever,
)

ROOT = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_sim_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_listen_on_loopback_with_a_free_port() -> None:
    args = parse()
    assert (args.host, args.port, args.seed, args.latency_ms) == ("127.0.0.1", 0, 0, 0.0)
    assert parse_fault_rules(args) == []


def test_a_cli_with_its_own_providers_option_can_reuse_the_rest() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", default="mine.yaml")
    add_serve_sim_arguments(parser, providers_option=False)
    args = parser.parse_args(["--port", "8123"])
    assert (args.providers, args.port) == ("mine.yaml", 8123)


def test_fault_options_become_rules() -> None:
    args = parse(
        "--fault",
        "error_500=0.1",
        "--fault",
        "hang=0.05",
        "--hang-s",
        "2",
        "--force-status",
        "DeepSeek-V3-0324-2=500",
    )
    assert parse_fault_rules(args) == [
        FaultRule(model="DeepSeek-V3-0324-2", status=500),
        FaultRule(error_500=0.1, hang=0.05, hang_s=2.0),
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ("--fault", "explode=0.1"),
        ("--fault", "error_500=lots"),
        ("--fault", "error_500=2"),
        ("--force-status", "gpt-4o-mini"),
        ("--force-status", "gpt-4o-mini=200"),
    ],
)
def test_bad_fault_options_are_usage_errors(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("--providers", str(ROOT / "providers.yaml"), *argv)
    assert run_serve_sim(args) == 2
    assert "error:" in capsys.readouterr().err


def test_remote_host_needs_explicit_consent(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_serve_sim(parse("--host", "0.0.0.0")) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_unknown_revoked_key_and_missing_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    providers = str(ROOT / "providers.yaml")
    assert run_serve_sim(parse("--providers", providers, "--revoke", "nobody")) == 2
    assert "nobody" in capsys.readouterr().err
    assert run_serve_sim(parse("--providers", str(tmp_path / "missing.yaml"))) == 2
    assert "not found" in capsys.readouterr().err


async def test_serve_forever_runs_until_stopped() -> None:
    stop = asyncio.Event()
    ready: list[SimServer] = []
    started = asyncio.Event()

    def on_ready(server: SimServer) -> None:
        ready.append(server)
        started.set()

    task = asyncio.create_task(serve_forever(SimServer(), stop=stop, on_ready=on_ready))
    await asyncio.wait_for(started.wait(), 2.0)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{ready[0].base_url}/sim/stats") as resp:
            assert resp.status == 200
        stop.set()
        await asyncio.wait_for(task, 2.0)
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{ready[0].base_url}/sim/stats")


async def probe(base_url: str) -> dict[str, Any]:
    """One Azure request to the simulator at base_url, then its counters."""
    async with aiohttp.ClientSession() as session:
        url = f"{base_url}/openai/deployments/DeepSeek-V3-0324-2/chat/completions"
        body = {"messages": [{"role": "user", "content": "hi"}]}
        params = {"api-version": "2024-12-01-preview"}
        headers = {"api-key": "sim-azure-oss"}
        async with session.post(url, json=body, params=params, headers=headers) as resp:
            assert resp.status == 200
        async with session.get(f"{base_url}/sim/stats") as resp:
            stats: dict[str, Any] = orjson.loads(await resp.read())
            return stats


@pytest.mark.slow
def test_serve_sim_process_serves_and_stops_on_sigint() -> None:
    code = (
        "import argparse, sys\n"
        "from ultra_async.sim import add_serve_sim_arguments, run_serve_sim\n"
        "p = argparse.ArgumentParser(); add_serve_sim_arguments(p)\n"
        "sys.exit(run_serve_sim(p.parse_args(sys.argv[1:])))\n"
    )
    argv = [sys.executable, "-c", code, "--providers", str(ROOT / "providers.yaml")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDEALLAB_", "AZURE_"))}
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = []
            # the banner ends with the counters line; an empty read means the process died
            while (line := proc.stdout.readline()) and not line.startswith("  counters"):
                lines.append(line.strip())
            assert lines and lines[0].startswith("simulator listening on http://127.0.0.1:")
            base_url = lines[0].split()[-1]
            assert f"export AZURE_OSS_ENDPOINT={base_url}" in lines
            assert "export IDEALLAB_API_KEY_0=sim-ideallab-0" in lines
            stats = asyncio.run(probe(base_url))
            assert set(stats["keys"]) == {"azure-oss"}
            assert stats["models"]["DeepSeek-V3-0324-2"]["ok"] == 1
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
