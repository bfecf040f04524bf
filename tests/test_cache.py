"""The response cache: keys, replay with zero requests, misses under --cache only, prune."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.test_run_simulated import FAST
from ultra_async.cli.main import main
from ultra_async.config import Config, load_config
from ultra_async.engine.limits import ShardLimits
from ultra_async.errors import ConfigError
from ultra_async.results.cache import CACHE_FILE, ResponseCache, cache_key
from ultra_async.results.cache_admin import prune
from ultra_async.results.db import comparable
from ultra_async.results.storage import read_journal
from ultra_async.results.transcripts import read_transcript
from ultra_async.runner import RunOptions, RunReport, run_evaluation


@pytest.fixture
def fast_config(write_yaml: Callable[[str], Path]) -> Config:
    return load_config(write_yaml(FAST))


def options(out: Path, prompt_types: str = "optimal,baseline", **extra: object) -> RunOptions:
    return RunOptions(
        models="qwen2.5-3b-instruct,DeepSeek-V3-0324",
        prompt_types=prompt_types,
        instances=2,
        simulate=True,
        seed=11,
        out=out,
        **extra,  # type: ignore[arg-type]
    )


def database(report: RunReport) -> dict[str, object]:
    return comparable(orjson.loads(report.database.read_bytes()))


def sent(report: RunReport) -> int:
    assert report.sim_stats is not None
    return int(report.sim_stats["total"]["requests"])


def test_key_depends_on_model_messages_and_parameters_only() -> None:
    messages = [{"role": "user", "content": "hi"}]
    key = cache_key("m", messages, {"seed": 1, "temperature": 0})
    assert len(key) == 16
    assert key == cache_key("m", [dict(messages[0])], {"temperature": 0, "seed": 1})
    assert key != cache_key("m2", messages, {"seed": 1, "temperature": 0})
    assert key != cache_key("m", messages, {"seed": 2, "temperature": 0})
    assert key != cache_key("m", [*messages, {"role": "user", "content": "x"}], {"seed": 1})


async def test_replay_sends_nothing_takes_no_token_and_gives_the_same_database(
    fast_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await run_evaluation(options(tmp_path), config=fast_config)
    assert first.summary.cached == 0 and sent(first) > 0
    original = database(first)
    answered = sum(r.requests - r.retries for r in read_journal(first.journal))

    tokens = []
    real_try, real_take = ShardLimits.try_take_token, ShardLimits.take_token

    def counting_try(self: ShardLimits) -> bool:
        tokens.append(1)
        return real_try(self)

    async def counting_take(self: ShardLimits) -> None:
        tokens.append(1)
        await real_take(self)

    monkeypatch.setattr(ShardLimits, "try_take_token", counting_try)
    monkeypatch.setattr(ShardLimits, "take_token", counting_take)
    replay = await run_evaluation(options(tmp_path, fresh=True, cache="only"), config=fast_config)
    assert sent(replay) == 0 and replay.summary.requests == 0 and tokens == []
    assert replay.summary.cached == answered
    assert sum(s["cached"] for s in replay.summary.shards) == answered
    assert database(replay) == original
    results = read_journal(replay.journal)
    assert sum(r.cached for r in results) == answered and all(r.requests == 0 for r in results)
    # the transcript of a replayed test: the same conversation, marked cached
    transcript = read_transcript(tmp_path, results[0].item_id)
    assert transcript is not None
    assert transcript["requests"] and all(r["cached"] for r in transcript["requests"])
    assert all(isinstance(r["reply"], str) for r in transcript["requests"])


async def test_a_miss_under_only_is_an_infra_error_and_a_rerun_fills_it(
    fast_config: Config, tmp_path: Path
) -> None:
    await run_evaluation(options(tmp_path, prompt_types="optimal"), config=fast_config)
    replay = await run_evaluation(
        options(tmp_path, fresh=True, cache="only", prompt_types="optimal,baseline"),
        config=fast_config,
    )
    assert sent(replay) == 0
    baseline = 2 * 5 * 2
    assert replay.summary.infra_errors == baseline and replay.summary.completed == baseline
    misses = [r for r in read_journal(replay.journal) if r.outcome == "infra_error"]
    assert {r.infra_reason for r in misses} == {"not in cache"}
    assert {r.prompt_type for r in misses} == {"baseline"}
    # a shard answering "not in cache" is not a broken shard
    assert replay.summary.dead_shards == {}

    filled = await run_evaluation(
        options(tmp_path, prompt_types="optimal,baseline"), config=fast_config
    )
    assert filled.summary.completed == baseline and filled.summary.infra_errors == 0
    assert sent(filled) > 0
    again = await run_evaluation(
        options(tmp_path, fresh=True, cache="only", prompt_types="optimal,baseline"),
        config=fast_config,
    )
    assert again.summary.infra_errors == 0 and sent(again) == 0


async def test_only_without_a_cache_is_a_clear_error(fast_config: Config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no response cache at .*--cache only"):
        await run_evaluation(options(tmp_path, cache="only"), config=fast_config)
    assert not (tmp_path / CACHE_FILE).exists()


async def test_refresh_sends_again_and_off_touches_no_cache(
    fast_config: Config, tmp_path: Path
) -> None:
    await run_evaluation(options(tmp_path / "a", prompt_types="optimal"), config=fast_config)
    refresh = await run_evaluation(
        options(tmp_path / "a", prompt_types="optimal", fresh=True, cache="refresh"),
        config=fast_config,
    )
    assert refresh.summary.cached == 0 and sent(refresh) > 0
    off = await run_evaluation(
        options(tmp_path / "b", prompt_types="optimal", cache="off"), config=fast_config
    )
    assert off.summary.cached == 0 and not (tmp_path / "b" / CACHE_FILE).exists()


async def test_a_shared_cache_answers_another_results_directory_and_prune_keeps_its_entries(
    fast_config: Config, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    one = await run_evaluation(options(tmp_path / "one", cache_dir=shared), config=fast_config)
    two = await run_evaluation(options(tmp_path / "two", cache_dir=shared), config=fast_config)
    assert sent(two) == 0 and two.summary.cached > 0
    assert database(one) == database(two)
    assert not (tmp_path / "one" / CACHE_FILE).exists()
    _, dropped, kept = prune(tmp_path / "two", shared)
    assert dropped == 0 and kept == two.summary.cached


async def test_prune_drops_entries_no_journal_refers_to(
    fast_config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_evaluation(options(tmp_path), config=fast_config)
    cache = ResponseCache(tmp_path / CACHE_FILE, readonly=True)
    before = cache.stats().entries
    cache.close()
    narrower = await run_evaluation(
        options(tmp_path, prompt_types="optimal", fresh=True), config=fast_config
    )
    assert sent(narrower) == 0
    capsys.readouterr()
    assert main(["cache", "prune", "--out", str(tmp_path)]) == 0
    kept = narrower.summary.cached
    assert f"dropped {before - kept} entries" in capsys.readouterr().out
    # what is left still replays the run the journal holds
    replay = await run_evaluation(
        options(tmp_path, prompt_types="optimal", fresh=True, cache="only"), config=fast_config
    )
    assert replay.summary.infra_errors == 0 and replay.summary.cached == kept


async def test_db_check_and_cache_stats_show_the_cache(
    fast_config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_evaluation(options(tmp_path, prompt_types="optimal"), config=fast_config)
    await run_evaluation(options(tmp_path, prompt_types="optimal", fresh=True), config=fast_config)
    capsys.readouterr()
    assert main(["db", "check", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"cache: {tmp_path / CACHE_FILE}" in out and "hit rate: 100.0%" in out
    assert main(["cache", "stats", "--out", str(tmp_path)]) == 0
    assert "entries:" in capsys.readouterr().out
    assert main(["cache", "stats", "--out", str(tmp_path / "empty")]) == 0
    assert "cache: none" in capsys.readouterr().out
