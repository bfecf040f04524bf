"""No API key reaches the console, the log file, the journal, the database or an exception."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from tests.loopback import Loopback, loopback_server
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.errors import InfraError
from ultra_async.logs import configure_logging
from ultra_async.planner import make_plan, model_names
from ultra_async.results.aggregator import Aggregator
from ultra_async.suites.workflow.suite import workflow_matrix
from ultra_async.types import ChatFn, Outcome, WorkItem

REVOKED = "sk-live-REVOKED-0123456789abcdef"
FAILING = "sk-live-FAILING-fedcba9876543210"
CONFIG = """
defaults:
  retry: {max_attempts: 2, base_delay_s: 0.001, max_delay_s: 0.01, test_deadline_s: 10}
keys:
  bad: {env: T_BAD}
  flaky: {env: T_FLAKY}
providers:
  p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}
models:
  revoked-model: {provider: p, strategy: single, keys: [bad], workers: 2, qps: 1000}
  failing-model: {provider: p, strategy: single, keys: [flaky], workers: 2, qps: 1000}
"""


async def test_keys_echoed_by_a_provider_are_never_recorded(
    write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    config = load_config(write_yaml(CONFIG))
    plan = make_plan(config, workflow_matrix(config, models="all", instances=2))
    console = io.StringIO()
    log_file = tmp_path / "run.log"
    configure_logging("debug", log_file=log_file, console=console)
    errors: list[str] = []

    async def evaluate(item: WorkItem, chat: ChatFn) -> Outcome:
        try:
            await chat([{"role": "user", "content": "hello"}])
        except InfraError as error:
            errors.append(repr(error) + str(error.args))
            raise
        return Outcome()

    keys = {"bad": SecretStr(REVOKED), "flaky": SecretStr(FAILING)}
    try:
        async with loopback_server(Loopback(revoked={REVOKED}, failing={FAILING})) as server:
            async with Aggregator(tmp_path, names=model_names(config)) as aggregator:
                async with Engine(
                    config, keys=keys, base_urls={"p": server.base_url + "/v1"}
                ) as engine:
                    summary = await engine.run(plan, evaluate, on_result=aggregator.submit)
    finally:
        configure_logging("warning")
    # the server really echoed both keys, and the run recorded every test as an infra error
    assert server.statuses[401] > 0 and server.statuses[500] > 0
    assert summary.infra_errors == plan.total and errors
    outputs = {
        "console": console.getvalue(),
        "log file": log_file.read_text(),
        "journal": (tmp_path / "results.jsonl").read_text(),
        "database": (tmp_path / "master_database.json").read_text(),
        "exceptions": "\n".join(errors),
        "summary": repr(summary),
    }
    assert "Incorrect API key provided" in outputs["journal"] + outputs["exceptions"]
    # the log file is JSON lines with snake_case events and their context
    events = [orjson.loads(line) for line in outputs["log file"].splitlines()]
    retrying = [e for e in events if e["event"] == "request_retrying"]
    assert retrying and {"model", "shard", "item", "attempt", "level", "timestamp"} <= set(
        retrying[0]
    )
    assert any(e["event"] == "shard_dead" and e["shard"] == "revoked-model" for e in events)
    for where, text in outputs.items():
        assert text, where
        for secret in (REVOKED, FAILING):
            assert secret not in text, f"{secret} leaked into the {where}"
            assert secret[8:] not in text, f"part of {secret} leaked into the {where}"


@pytest.mark.parametrize("text", ["Bearer sk-abcdefghijklmnop", "api key sk-proj_1234567890abc"])
def test_key_shaped_strings_are_redacted_in_logs(text: str) -> None:
    from ultra_async.logs import redact

    assert "sk-" not in redact(text).replace("[redacted]", "")
