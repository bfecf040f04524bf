"""The results viewer: its data, its HTTP API, the `view` command, and the page in chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.browser import INSTALL, Browser, find_chromium
from tests.fixtures.generic_db import MODELS as GENERIC_MODELS
from tests.fixtures.generic_db import generic_database
from tests.test_run_simulated import FAST
from ultra_async.config import load_config
from ultra_async.report.view import serving, write_html
from ultra_async.report.viewdata import JournalIndex, cause, error_causes, index_for, payload
from ultra_async.results.storage import DATABASE_FILE, JOURNAL_FILE
from ultra_async.runner import RunOptions, run_evaluation

REPO = Path(__file__).resolve().parents[1]
FAST_MODELS = ("DeepSeek-V3-0324", "o3-0416-global", "qwen2.5-3b-instruct")
needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason=f"chromium is not installed (to run this test: {INSTALL})"
)


@pytest.fixture
async def run_dir(write_yaml: Callable[[str], Path], tmp_path: Path) -> Path:
    """A real simulated run: 15 tests of 3 models, with their transcripts."""
    out = tmp_path / "run"
    config = load_config(write_yaml(FAST))
    options = RunOptions(
        models="all", prompt_types="optimal,baseline", instances=1, simulate=True, out=out
    )
    report = await run_evaluation(options, config=config)
    assert report.summary.completed == 30
    return out


def record(item_id: str, outcome: str = "completed", **fields: Any) -> bytes:
    base = {"item_id": item_id, "model": "m", "shard": "s", "outcome": outcome,
            "prompt_type": "optimal", "tool_success_rate": 0.8, "difficulty": "easy",
            "task_type": "simple_task", "success_level": "full_success",
            "finished_at": time.time()}  # fmt: skip
    return orjson.dumps({**base, **fields}) + b"\n"


# ---- data ---------------------------------------------------------------------------------


async def test_payload_of_a_run_has_every_model_and_dimension(run_dir: Path) -> None:
    data = payload(run_dir, index_for(run_dir))
    assert data["models"] == sorted(FAST_MODELS, key=str.casefold)
    assert data["dimensions"] == ["prompt_type", "tool_success_rate", "difficulty", "task_type"]
    assert "success_rate" in data["metrics"] and data["tests"] == 30
    cells = data["tables"]["prompt_type"]
    assert {c["model"] for c in cells} == set(FAST_MODELS)
    cell = cells[0]
    low, high = cell["ci"]["success_rate"]
    assert cell["n"] == 5 and low <= cell["metrics"]["success_rate"] <= high


def test_journal_index_reads_appended_lines_and_waits_for_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(record("a", "infra_error", infra_reason="HTTP 503 after 6 attempts in 12.5s"))
    index = JournalIndex(path, ("prompt_type", "tool_success_rate"))
    index.refresh()
    assert index.tests["a"]["kind"] == "infra"
    assert index.tests["a"]["labels"] == {"prompt_type": "optimal", "tool_success_rate": "0.8"}
    with open(path, "ab") as f:
        f.write(record("a") + record("b")[:20])  # a retry completed; b is half written
    index.refresh()
    assert index.tests["a"]["outcome"] == "completed" and "b" not in index.tests
    with open(path, "ab") as f:
        f.write(record("b")[20:] + record("a", "infra_error", infra_reason="late"))
    index.refresh()
    assert set(index.tests) == {"a", "b"}
    assert index.tests["a"]["outcome"] == "completed"  # a completed record is final
    path.write_bytes(record("c"))  # replaced (db repair, --fresh): start over
    index.refresh()
    assert set(index.tests) == {"c"}


def test_which_record_of_an_item_is_shown(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    lines = [
        record("e", "request_error", reason="HTTP 400: context length exceeded"),
        record("e", "infra_error", reason="late"),  # an infra error never replaces a final one
        record("r", "evaluate_error", reason="evaluate raised KeyError: 'x'"),
        record("r", case_digest="d1"),  # a rerun of errors replaces the error
        record("c", case_digest="d1"),
        record("c", "evaluate_error", case_digest="d1", reason="same case"),  # ignored
        record("d", case_digest="d1"),
        record("d", "evaluate_error", case_digest="d2", reason="changed case"),  # replaces
    ]
    path.write_bytes(b"".join(lines))
    index = JournalIndex(path, ("prompt_type",))
    index.refresh()
    shown = {k: (t["outcome"], t["kind"], t["reason"]) for k, t in index.tests.items()}
    assert shown == {
        "e": ("request_error", "request", "HTTP 400: context length exceeded"),
        "r": ("completed", None, None),
        "c": ("completed", None, None),
        "d": ("evaluate_error", "evaluate", "changed case"),
    }


def test_labels_of_a_generic_record(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    line = {"item_id": "x", "model": "m", "shard": "s", "outcome": "completed",
            "labels": {"language": "fr", "level": 2}}  # fmt: skip
    path.write_bytes(orjson.dumps(line) + b"\n")
    index = JournalIndex(path, ("language", "level"))
    index.refresh()
    assert index.tests["x"]["labels"] == {"language": "fr", "level": "2"}


def test_errors_group_by_cause() -> None:
    assert cause("HTTP 503 after 6 attempts in 12.5s") == "HTTP 503 after 6 attempts in Ns"
    assert cause("evaluate raised KeyError: 'tool_17'") == "evaluate raised KeyError"
    tests = [
        {"model": "m", "kind": "infra", "reason": "test exceeded its deadline of 60s"},
        {"model": "m", "kind": "infra", "reason": "test exceeded its deadline of 60s"},
        {"model": "m", "kind": "evaluate", "reason": "evaluate raised ValueError: bad"},
        {"model": "n", "kind": "request", "reason": "HTTP 400: context length exceeded"},
        {"model": "n", "kind": None, "reason": None},
    ]
    assert error_causes(tests) == {
        "m": {"infra": {"test exceeded its deadline of Ns": 2},
              "evaluate": {"evaluate raised ValueError": 1}},
        "n": {"request": {"HTTP 400: context length exceeded": 1}},
    }  # fmt: skip


def test_progress_while_a_run_writes(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).write_bytes(record("a") + record("b", shard="s2"))
    data = payload(tmp_path, index_for(tmp_path))
    assert data["progress"]["active"] is True
    model = data["progress"]["models"]["m"]
    assert (model["done"], model["recent"], sorted(model["shards"])) == (2, 2, ["s", "s2"])
    old = time.time() - 3600
    os.utime(tmp_path / JOURNAL_FILE, (old, old))
    assert payload(tmp_path, index_for(tmp_path))["progress"]["active"] is False


# ---- HTTP ---------------------------------------------------------------------------------


async def test_http_api_serves_data_tests_and_transcripts(run_dir: Path) -> None:
    async with serving(run_dir, 0) as url, aiohttp.ClientSession() as http:
        assert url.startswith("http://127.0.0.1:")
        async with http.get(url) as response:
            assert response.status == 200 and "viewer.js" in await response.text()
        async with http.get(url + "api/data") as response:
            data = await response.json()
        assert data["models"] == sorted(FAST_MODELS, key=str.casefold)
        query = {"model": "o3-0416-global", "dimension": "prompt_type", "value": "optimal"}
        async with http.get(url + "api/tests", params=query) as response:
            tests = (await response.json())["tests"]
        assert len(tests) == 5 and all(t["model"] == "o3-0416-global" for t in tests)
        item = tests[0]["item_id"]
        async with http.get(url + "api/transcript", params={"item_id": item}) as response:
            body = await response.json()
        assert body["transcript"]["item_id"] == item and body["transcript"]["requests"]
        async with http.get(url + "api/transcript", params={"item_id": "no/such"}) as response:
            assert response.status == 404 and "no transcript" in (await response.json())["error"]
        async with http.get(url + "api/tests") as response:
            assert response.status == 400


def test_view_command_serves_until_interrupted(tmp_path: Path) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(generic_database()))
    with subprocess.Popen(
        [sys.executable, "-m", "ultra_async", "view", "--out", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        import urllib.request

        with urllib.request.urlopen(url + "api/data", timeout=10) as response:
            assert orjson.loads(response.read())["suite"] == "qa"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None and "Traceback" not in process.stderr.read()


def test_view_without_results_says_where_to_look(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ultra_async", "view", "--out", str(tmp_path / "none")],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3 and result.stderr.count("\n") == 1
    assert "no results in" in result.stderr


# ---- in a real browser --------------------------------------------------------------------


async def heatmap_models(browser: Browser) -> list[str]:
    value: list[str] = await browser.evaluate(
        "[...document.querySelectorAll('#heatmap tbody th.model')].map(e => e.textContent)"
    )
    return value


async def click_through_to_a_transcript(browser: Browser) -> str:
    """Click a cell, then its first test; the transcript's text."""
    await browser.click("#heatmap td.cell[data-model='o3-0416-global']:not(.empty)")
    await browser.wait_for("document.querySelectorAll('#tests tr.test').length > 0")
    await browser.click("#tests tr.test")
    text: str = await browser.wait_for(
        "document.querySelector('#transcript .request') && "
        "document.querySelector('#transcript').innerText"
    )
    return text


@needs_chromium
async def test_served_page_in_chromium_reaches_a_transcript(run_dir: Path) -> None:
    async with serving(run_dir, 0) as url, Browser() as browser:
        await browser.goto(url)
        assert await heatmap_models(browser) == sorted(FAST_MODELS, key=str.casefold)
        cells = await browser.evaluate("document.querySelectorAll('#heatmap td.cell').length")
        assert cells == 3 * 2  # models × prompt types
        assert "n=5" in await browser.evaluate("document.querySelector('#heatmap').innerText")
        text = await click_through_to_a_transcript(browser)
        assert "request 1" in text and "REPLY" in text.upper() and "tokens" in text
        # another dimension and metric redraw the heatmap
        await browser.evaluate(
            "(() => { const s = document.getElementById('by'); s.value = 'task_type';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        assert await browser.evaluate("document.querySelectorAll('#heatmap td.cell').length") == 15


@needs_chromium
async def test_html_file_in_chromium_reaches_a_transcript(run_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "results.html"
    write_html(run_dir, page)
    html = page.read_text()
    assert "viewer.js" not in html.split("<body>")[1].split("<script>")[0]  # inlined
    async with Browser() as browser:
        await browser.goto(page.as_uri())
        assert await heatmap_models(browser) == sorted(FAST_MODELS, key=str.casefold)
        text = await click_through_to_a_transcript(browser)
        assert "request 1" in text


@needs_chromium
async def test_a_generic_suite_in_chromium(tmp_path: Path) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(generic_database()))
    async with serving(tmp_path, 0) as url, Browser() as browser:
        await browser.goto(url + "#by=level&metric=avg_accuracy")
        assert await heatmap_models(browser) == ["Alpha-7B", "beta-large", "zeta-small"]
        assert sorted(GENERIC_MODELS, key=str.casefold) == await heatmap_models(browser)
        headers = await browser.evaluate(
            "[...document.querySelectorAll('#heatmap thead th')].map(e => e.textContent)"
        )
        assert headers[1:] == ["1", "2"]
        assert await browser.evaluate("document.getElementById('metric').value") == "avg_accuracy"
        errors = await browser.evaluate("document.getElementById('errors').innerText")
        assert "evaluate" in errors and "beta-large" in errors


async def test_a_run_that_has_only_begun_then_writes_its_database(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).write_bytes(record("a", labels={"language": "fr", "level": 1}))
    async with serving(tmp_path, 0) as url, aiohttp.ClientSession() as http:
        async with http.get(url + "api/data") as response:
            data = await response.json()
        assert data["dimensions"] == [] and data["progress"]["active"] and data["tests"] == 1
        # the database appears: its dimensions label the tests from now on
        (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(generic_database()))
        query = {"model": "m", "dimension": "language", "value": "fr"}
        async with http.get(url + "api/tests", params=query) as response:
            assert [t["item_id"] for t in (await response.json())["tests"]] == ["a"]


def test_report_html_writes_one_self_contained_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from ultra_async.report.tables import add_report_arguments, run_report

    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(generic_database()))
    page = tmp_path / "r.html"
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    argv = ["--out", str(tmp_path), "--html", str(page), "--metric", "avg_accuracy"]
    assert run_report(parser.parse_args(argv)) == 0
    html = page.read_text()
    assert "window.UA_EMBED = {" in html and '"metric":"avg_accuracy"' in html
    assert '<script src="viewer.js">' not in html and all(m in html for m in GENERIC_MODELS)
    assert "viewer written to" in capsys.readouterr().err
    argv = ["--out", str(tmp_path), "--html", str(tmp_path / "no" / "such" / "r.html")]
    assert run_report(parser.parse_args(argv)) == 1
    assert "could not write" in capsys.readouterr().err
