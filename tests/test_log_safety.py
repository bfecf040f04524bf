"""Logging never shows a secret or a local variable, and never stops an evaluation."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import structlog
from pydantic import SecretStr

from tests.conftest import ROOT
from ultra_async._input import key_problem
from ultra_async.config import load_config
from ultra_async.engine.client import MESSAGE_CHARS, _error_fields
from ultra_async.engine.engine import Engine
from ultra_async.errors import ConfigError
from ultra_async.logs import configure_logging, redact, register_secret
from ultra_async.planner import make_plan
from ultra_async.results import db
from ultra_async.results.storage import JOURNAL_FILE, read_journal
from ultra_async.suites.workflow.suite import workflow_matrix

SECRET = "sk-logtest-Zq7vRk2LmN9xPw4TbY6cHs1DfG8jKe3U"
register_secret(SECRET)


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    configure_logging("warning")


def _fail_with_a_secret_in_locals() -> None:
    secret = SECRET  # a local variable a rich traceback would print
    headers = {"Authorization": f"Bearer {secret}"}
    raise ValueError(f"header value rejected: {headers['Authorization'][:30]}")


def test_tracebacks_show_no_locals_and_no_secret(console: io.StringIO, tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    configure_logging("info", log_file=log_file, console=console)
    try:
        _fail_with_a_secret_in_locals()
    except ValueError:
        structlog.get_logger("t").exception("evaluate_failed", item="i1")
    shown, written = console.getvalue(), log_file.read_text()
    event = orjson.loads(written.splitlines()[-1])
    assert event["event"] == "evaluate_failed" and "ValueError" in event["exception"]
    for text in (shown, written):
        assert "Traceback (most recent call last)" in text
        assert "_fail_with_a_secret_in_locals" in text
        # what a traceback with local variables shows (rich's "locals" panel)
        assert "headers = {'Authorization'" not in text and "secret = '" not in text
        assert "─ locals ─" not in text
        # the message quoted 19 characters of the key; the rendered text has none of them
        assert SECRET[:19] not in text and SECRET[7:15] not in text
        assert "[redacted]" in text


@pytest.mark.parametrize("start", [0, 5, 17, 30])
def test_any_eight_characters_of_a_secret_are_redacted(start: int) -> None:
    piece = SECRET[start : start + 8]
    assert len(piece) == 8
    text = f"error body: ...{piece}... and {SECRET[start:]}"
    cleaned = redact(text)
    assert piece not in cleaned and "[redacted]" in cleaned
    assert SECRET[:7] not in redact(SECRET[:7] + "zzz") or len(SECRET[:7]) < 8


def test_redaction_applies_to_the_rendered_line_not_only_strings(console: io.StringIO) -> None:
    configure_logging("info", console=console)
    structlog.get_logger("t").warning("odd_values", values=[SECRET], mapping={"k": SECRET[3:20]})
    assert "[redacted]" in console.getvalue()
    assert SECRET[3:11] not in console.getvalue()


def test_an_error_body_is_redacted_before_it_is_cut() -> None:
    long_key = "sk-long-" + "AbCdEfGh0123456789" * 10  # longer than the message limit
    register_secret(long_key)
    body = orjson.dumps({"error": {"message": "x" * 200 + " key " + long_key, "code": long_key}})
    message, code = _error_fields(body, long_key)
    assert len(message) <= MESSAGE_CHARS
    for text in (message, code or ""):
        assert not any(long_key[i : i + 8] in text for i in range(len(long_key) - 7)), text
    plain, _ = _error_fields(("y" * 150 + long_key).encode(), long_key)
    assert not any(long_key[i : i + 8] in plain for i in range(len(long_key) - 7)), plain


def test_a_log_file_on_a_full_disk_is_given_up_once(console: io.StringIO) -> None:
    configure_logging("info", log_file=Path("/dev/full"), console=console)
    log = structlog.get_logger("t")
    for i in range(5):
        log.warning("still_running", i=i)  # must not raise
    lines = console.getvalue().splitlines()
    assert sum("cannot write the log file /dev/full" in line for line in lines) == 1, lines
    assert sum("still_running" in line for line in lines) == 5


def test_a_console_that_cannot_be_written_is_skipped() -> None:
    closed = io.StringIO()
    closed.close()
    try:
        configure_logging("info", console=closed)
        structlog.get_logger("t").error("nowhere_to_go")  # must not raise
    finally:
        configure_logging("warning")


@pytest.mark.slow
def test_a_run_whose_log_is_on_a_full_disk_finishes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.log").symlink_to("/dev/full")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ULTRA_ASYNC_")}
    args = ["--models", "qwen2.5-7b-instruct", "--task-types", "simple_task,basic_task"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ultra_async",
            "run",
            "--simulate",
            "--quiet",
            *args,
            "--providers",
            str(ROOT / "providers.yaml"),
            "--out",
            str(out),
            "--log-level",
            "info",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("cannot write the log file") == 1, proc.stderr
    assert len(read_journal(out / JOURNAL_FILE)) == 2
    assert db.check(out).code == db.EXIT_OK


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (SECRET + "\n", "a line break (at its end)"),
        ("\r\n" + SECRET, "a line break (at its start)"),
        (SECRET[:10] + " " + SECRET[10:], "whitespace (inside)"),
        (SECRET[:10] + "\x00" + SECRET[10:], "a control character (inside)"),
        (SECRET + "é", "a non-ASCII character (at its end)"),
    ],
)
def test_key_problems_name_what_is_wrong_without_the_key(value: str, words: str) -> None:
    problem = key_problem(value)
    assert problem is not None and words in problem
    assert SECRET[:8] not in problem
    assert key_problem(SECRET) is None


async def test_the_engine_refuses_a_key_with_a_control_character(
    write_yaml: Callable[[str], Path],
) -> None:
    config = load_config(
        write_yaml(
            """
keys: {k: {env: T_K}}
providers: {p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}}
models: {m: {provider: p, strategy: single, keys: [k], workers: 1, qps: 10}}
"""
        )
    )
    plan = make_plan(config, workflow_matrix(config, task_types="simple_task"))

    async def never(*_: object) -> None:
        raise AssertionError("no test may start")

    bad = SecretStr(SECRET + "\n")
    with pytest.raises(ConfigError, match=r"^key 'k': the key holds a line break") as info:
        async with Engine(config, keys={"k": bad}) as engine:
            await engine.run(plan, never)  # type: ignore[arg-type]
    assert SECRET[:8] not in str(info.value)


async def test_an_engine_in_an_unconfigured_program_prints_no_locals(
    write_yaml: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(
        write_yaml(
            """
keys: {k: {env: T_K}}
providers: {p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}}
models: {m: {provider: p, strategy: single, keys: [k], workers: 1, qps: 10}}
"""
        )
    )
    plan = make_plan(config, workflow_matrix(config, task_types="simple_task"))

    async def evaluate(*_: object) -> None:
        secret = SECRET  # structlog's default renderer would print this local
        raise RuntimeError(f"user code failed near {secret[:3]}")

    structlog.reset_defaults()
    try:
        async with Engine(config, keys={"k": SecretStr(SECRET)}) as engine:
            summary = await engine.run(plan, evaluate)  # type: ignore[arg-type]
    finally:
        configure_logging("warning")
    err = capsys.readouterr().err
    assert summary.evaluate_errors == 1
    assert "evaluate_failed" in err and "RuntimeError" in err
    assert "secret = '" not in err and SECRET[3:11] not in err
