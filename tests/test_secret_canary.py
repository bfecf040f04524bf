"""A canary key through every error path of a real `python -m ultra_async run`; then every byte
the run produced (stdout, stderr, run.log, journal, database, reports, exports) is searched for
any 8 consecutive characters of it.

The loopback server answers 400, 401 and 500 with bodies that quote the key after more text
than an error message keeps, and the key itself is longer than that limit: a message cut before
it is redacted would keep a piece of the key.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ultra_async.cli.main import main
from ultra_async.engine.client import MESSAGE_CHARS

#: longer than an error message is kept, and made of characters no output has by chance
# no 8 characters of the key may stand in the run's fixed texts (models are canary-400/401/500)
KEY = "sk-Q7" + secrets.token_urlsafe(300)
PADDING = "the request could not be served because " * 6  # over 200 characters
assert len(KEY) > MESSAGE_CHARS and len(PADDING) > 200


class Echo(BaseHTTPRequestHandler):
    """Quotes the caller's key back in every error, as careless providers do."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ")
        model = body["model"]
        if model == "canary-400":
            status, text = (
                400,
                json.dumps(
                    {"error": {"message": f"{PADDING} key {key} may not", "code": "bad_request"}}
                ),
            )
        elif model == "canary-401":
            status, text = (
                401,
                json.dumps(
                    {"error": {"message": f"{PADDING} Incorrect API key: {auth}", "code": key}}
                ),
            )
        else:
            status, text = 500, f"{PADDING} while serving key={key} headers={dict(self.headers)}"
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if status != 500 else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def providers(base_url: str) -> str:
    models = "\n".join(
        f"  canary-{s}: {{provider: loop, strategy: single, keys: [k], workers: 1, qps: 100}}"
        for s in (400, 401, 500)
    )
    return f"""
defaults:
  retry: {{max_attempts: 2, base_delay_s: 0.01, max_delay_s: 0.02, test_deadline_s: 30}}
keys:
  k: {{env: CANARY_KEY}}
providers:
  loop: {{kind: openai, base_url: "{base_url}"}}
models:
{models}
"""


def leaks(text: str, key: str = KEY) -> list[str]:
    """Every 8-character run of `key` found in `text`."""
    windows = {key[i : i + 8] for i in range(len(key) - 7)}
    return sorted({text[i : i + 8] for i in range(len(text) - 7) if text[i : i + 8] in windows})


def run_cli(args: list[str], cwd: Path, key: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ULTRA_ASYNC_")}
    env["CANARY_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "ultra_async", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=env,
    )


@pytest.mark.slow
def test_no_piece_of_the_key_in_anything_a_failing_run_produced(
    echo_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(providers(echo_server), encoding="utf-8")
    out = tmp_path / "out"
    common = ["--providers", str(path)]
    run = run_cli(
        ["run", *common, "--out", str(out), "--task-types", "simple_task", "--log-level", "debug"],
        tmp_path,
        KEY,
    )
    assert run.returncode == 1, run.stdout + run.stderr  # every test is an infra error
    produced = {"run stdout": run.stdout, "run stderr": run.stderr}
    for args in (
        ["report", "--out", str(out)],
        ["report", "--out", str(out), "--format", "json"],
        ["db", "check", "--out", str(out)],
        ["db", "export", "--out", str(out), "--format", "jsonl"],
    ):
        main(args)  # in-process: the reports read only the files checked below
        captured = capsys.readouterr()
        produced[" ".join(args)] = captured.out + captured.err
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"run.log", "results.jsonl", "master_database.json"}
    for file in files:
        produced[str(file)] = file.read_bytes().decode("utf-8", "replace")
    for where, text in produced.items():
        assert not leaks(text), f"pieces of the key in {where}: {leaks(text)[:3]}"
    # the errors really happened and were recorded, with their text
    journal = produced[str(out / "results.jsonl")]
    assert journal.count('"outcome":"infra_error"') == 2, journal  # 401 and 500
    assert journal.count('"outcome":"request_error"') == 1, journal  # a 400 is final
    assert "400 bad_request" in journal and "HTTP 401" in journal, journal
    assert "Incorrect API key" in journal and "[redacted]" in journal


BAD_KEYS = [KEY + "\n", "\t" + KEY, KEY[:40] + "\x07" + KEY[40:], KEY[:40] + " " + KEY[40:]]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=["newline", "tab", "bell", "space"])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_key_with_a_control_character_is_refused_before_anything_starts(
    bad: str,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(providers("http://127.0.0.1:9/v1"), encoding="utf-8")
    out = tmp_path / "out"
    monkeypatch.setenv("CANARY_KEY", bad)
    args = ["--out", str(out)] if command == "run" else []
    assert main([command, "--providers", str(path), *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("$CANARY_KEY: the key holds"), lines
    assert not leaks(captured.out + captured.err)
    assert not out.exists()
    if command == "validate":
        assert "MALFORMED" in captured.out


@pytest.mark.slow
def test_a_key_with_a_newline_is_refused_by_the_real_command(
    echo_server: str, tmp_path: Path
) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(providers(echo_server), encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(["run", "--providers", str(path), "--out", str(out)], tmp_path, KEY + "\n")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("$CANARY_KEY: the key holds a line break (at its end)")
    assert len(proc.stderr.splitlines()) == 1
    assert not leaks(proc.stdout + proc.stderr)
    assert not out.exists()
