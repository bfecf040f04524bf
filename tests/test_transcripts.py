"""Transcripts: every test's conversation beside the journal, read back by item id."""

from __future__ import annotations

import itertools
import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from pydantic import SecretStr

from tests.conftest import ROOT
from tests.loopback import Loopback, loopback_server
from tests.test_run_simulated import FAST
from ultra_async.cli.main import main
from ultra_async.config import Config, load_config
from ultra_async.engine.engine import Engine
from ultra_async.engine.recording import open_recording
from ultra_async.planner import make_plan, model_names
from ultra_async.results.aggregator import Aggregator
from ultra_async.results.storage import read_journal
from ultra_async.results.transcript_writer import encode
from ultra_async.results.transcripts import (
    TRANSCRIPTS_FILE,
    Request,
    TestRecording,
    read_transcript,
)
from ultra_async.runner import RunOptions, run_evaluation
from ultra_async.suites.workflow.suite import workflow_matrix
from ultra_async.types import ChatFn, ChatResponse, Outcome, WorkItem

REQUEST_KEYS = {
    "messages",
    "reply",
    "input_tokens",
    "output_tokens",
    "latency_s",
    "finish_reason",
    "cached",
    "attempts",
}


@pytest.fixture
def fast_config(write_yaml: Callable[[str], Path]) -> Config:
    return load_config(write_yaml(FAST))


def options(out: Path, **extra: object) -> RunOptions:
    return RunOptions(
        models="o3-0416-global,DeepSeek-V3-0324",
        prompt_types="optimal,baseline",
        instances=2,
        simulate=True,
        seed=5,
        out=out,
        **extra,  # type: ignore[arg-type]
    )


async def test_every_test_has_its_conversation(fast_config: Config, tmp_path: Path) -> None:
    report = await run_evaluation(options(tmp_path, cache="off"), config=fast_config)
    results = read_journal(report.journal)
    assert len(results) == 2 * 2 * 5 * 2
    for result in results:
        transcript = read_transcript(tmp_path, result.item_id)
        assert transcript is not None
        assert set(transcript) == {"item_id", "model", "shard", "requests", "truncated"}
        assert transcript["item_id"] == result.item_id and transcript["shard"] == result.shard
        assert transcript["model"] == result.model and transcript["truncated"] is False
        requests = transcript["requests"]
        assert len(requests) == result.metrics["turns"] == result.requests - result.retries
        assert sum(r["input_tokens"] for r in requests) == result.input_tokens
        assert sum(r["output_tokens"] for r in requests) == result.output_tokens
        first = requests[0]
        assert set(first) == REQUEST_KEYS
        assert [m["role"] for m in first["messages"]][:2] == ["system", "user"]
        for before, after in itertools.pairwise(requests):
            assert set(after) == REQUEST_KEYS and isinstance(after["reply"], str)
            # only the new messages: the previous reply echoed back, then the tool feedback
            assert after["messages"][0] == {"role": "assistant", "content": before["reply"]}
            assert [m["role"] for m in after["messages"]] == ["assistant", "user"]
            assert after["cached"] is False and after["latency_s"] >= 0
    # the journal itself carries no transcript
    assert b"messages" not in report.journal.read_bytes()
    assert read_transcript(tmp_path, "no/such/item") is None


async def test_failures_mode_keeps_only_tests_that_did_not_fully_succeed(
    fast_config: Config, tmp_path: Path
) -> None:
    report = await run_evaluation(
        options(tmp_path, transcripts="failures", cache="off"), config=fast_config
    )
    results = read_journal(report.journal)
    full = [r for r in results if r.success_level == "full_success"]
    other = [r for r in results if r.success_level != "full_success"]
    assert full and other
    assert all(read_transcript(tmp_path, r.item_id) is None for r in full)
    assert all(read_transcript(tmp_path, r.item_id) is not None for r in other)


async def test_none_mode_with_the_cache_off_writes_no_file(
    fast_config: Config, tmp_path: Path
) -> None:
    await run_evaluation(options(tmp_path, transcripts="none", cache="off"), config=fast_config)
    assert not (tmp_path / TRANSCRIPTS_FILE).exists()


ENGINE_CONFIG = """
defaults:
  retry: {max_attempts: 3, base_delay_s: 0.01, max_delay_s: 0.02, test_deadline_s: 20}
keys:
  good: {env: T_GOOD}
  bad: {env: T_BAD}
providers:
  p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}
models:
  fine: {provider: p, strategy: single, keys: [good], workers: 2, qps: 1000}
  broken: {provider: p, strategy: single, keys: [bad], workers: 2, qps: 1000}
"""


async def two_turns(item: WorkItem, chat: ChatFn) -> Outcome:
    messages = [{"role": "user", "content": f"hello {item.id}"}]
    first = await chat(messages, temperature=0)
    messages += [{"role": "assistant", "content": first.content}, {"role": "user", "content": "2"}]
    await chat(messages, temperature=0)
    return Outcome(success_level="full_success", metrics={"workflow_score": 1, "phase2_score": 1})


async def test_failed_attempts_are_kept_with_reason_and_status_and_no_secret(
    write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    config = load_config(write_yaml(ENGINE_CONFIG))
    keys = {"good": SecretStr("sk-good-0123456789"), "bad": SecretStr("sk-bad-0123456789")}
    plan = make_plan(config, workflow_matrix(config, models="all", prompt_types="optimal"))
    server = Loopback(failing={"sk-bad-0123456789"})
    async with (
        loopback_server(server),
        open_recording(tmp_path, transcripts="all", cache="off") as (recording, writer),
        Aggregator(tmp_path, names=model_names(config), on_batch=writer.write) as agg,  # type: ignore[union-attr]
        Engine(
            config, keys=keys, base_urls={"p": server.base_url + "/v1"}, recording=recording
        ) as engine,
    ):
        summary = await engine.run(plan, two_turns, on_result=agg.submit)
    assert summary.completed == 5 and summary.infra_errors == 5
    results = {r.item_id: r for r in read_journal(tmp_path / "results.jsonl")}
    for item_id, result in results.items():
        transcript = read_transcript(tmp_path, item_id)
        assert transcript is not None
        if result.model == "fine":
            assert [r["reply"] for r in transcript["requests"]] == ["ok", "ok"]
            assert transcript["requests"][1]["messages"] == [
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "2"},
            ]
            assert transcript["requests"][0]["finish_reason"] == "stop"
            continue
        (request,) = transcript["requests"]
        assert request["reply"] is None and request["finish_reason"] is None
        assert len(request["attempts"]) == 3
        assert all(a["status"] == 500 for a in request["attempts"])
        assert all("HTTP 500" in a["error"] for a in request["attempts"])
        assert "sk-bad" not in orjson.dumps(transcript).decode()
    raw = (tmp_path / TRANSCRIPTS_FILE).read_bytes()
    assert b"sk-bad-0123456789" not in raw and b"sk-good-0123456789" not in raw


def test_a_transcript_over_the_cap_keeps_whole_requests_and_says_truncated() -> None:
    reply = ChatResponse(content="r" * 1000, input_tokens=1, output_tokens=1)
    requests = [
        Request([{"role": "user", "content": f"{i} " + "x" * 3000}], reply, None, False, None, 0.1)
        for i in range(50)
    ]
    body, truncated = encode(TestRecording("a/b", "m", "s", requests), cap_bytes=20_000)
    kept = orjson.loads(zlib.decompress(body))
    assert truncated and 0 < len(kept) < 50
    assert len(zlib.decompress(body)) <= 20_000
    assert [e["messages"][0]["content"].split()[0] for e in kept] == [
        str(i) for i in range(len(kept))
    ]
    # a single request larger than the cap is cut, not dropped
    huge = [Request([{"role": "user", "content": "y" * 100_000}], reply, None, False, None, 0)]
    body, truncated = encode(TestRecording("a/b", "m", "s", huge), cap_bytes=40_000)
    (entry,) = orjson.loads(zlib.decompress(body))
    assert truncated and "characters cut" in entry["messages"][0]["content"]


async def test_show_prints_a_transcript_wrapped_and_without_secrets(
    fast_config: Config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = await run_evaluation(options(tmp_path, cache="off"), config=fast_config)
    result = read_journal(report.journal)[0]
    # secrets that ended up in a stored message are still never printed: a key-shaped one,
    # and the value of a key variable of providers.yaml (show finds it in the environment)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("IDEALLAB_API_KEY_1", "plainvalue-of-a-key-9876")
    conn = sqlite3.connect(tmp_path / TRANSCRIPTS_FILE)
    body = conn.execute(
        "SELECT body FROM transcripts WHERE item_id = ?", (result.item_id,)
    ).fetchone()[0]
    entries = orjson.loads(zlib.decompress(body))
    entries[0]["messages"][1]["content"] += " key sk-planted-secret-42 plainvalue-of-a-key-9876"
    conn.execute(
        "UPDATE transcripts SET body = ? WHERE item_id = ?",
        (zlib.compress(orjson.dumps(entries)), result.item_id),
    )
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["show", result.item_id, "--out", str(tmp_path), "--width", "60"]) == 0
    out = capsys.readouterr().out
    assert result.item_id in out and "[system]" in out and "[reply]" in out
    assert "sk-planted-secret-42" not in out and "[redacted]" in out
    assert "plainvalue-of-a-key-9876" not in out
    assert max(len(line) for line in out.splitlines()) <= 60
    assert main(["show", "nothing/like/this", "--out", str(tmp_path)]) == 2
    assert "no transcript for nothing/like/this" in capsys.readouterr().err


def test_a_transcript_that_cannot_be_encoded_costs_only_itself(tmp_path: Path) -> None:
    from ultra_async.engine.recording import Recording
    from ultra_async.results.transcript_writer import TranscriptWriter
    from ultra_async.types import TestResult

    writer = TranscriptWriter(tmp_path, "all")
    writer.open()
    reply = ChatResponse(content="fine")
    results = []
    for name, content in (("bad", 2**70), ("good", "hello")):
        result = TestResult(
            item_id=name, model="m", case_id="c", instance=0, labels={"k": "v"},
            shard="s", outcome="completed",
        )  # fmt: skip
        recorder = Recording().recorder(
            None, SimpleNamespace(shard=SimpleNamespace(model="m", name="s"))
        )  # type: ignore[arg-type]
        recorder.requests.append(
            Request([{"role": "user", "content": content}], reply, None, False, None, 0.0)
        )
        results.append(recorder.finish(result))
    writer.write(results)
    writer.close()
    assert read_transcript(tmp_path, "bad") is None
    good = read_transcript(tmp_path, "good")
    assert good is not None and good["requests"][0]["reply"] == "fine"
