"""Broken providers.yaml files and bad command-line values: for each, `validate` and `run` exit
with the documented code (2), print one line per problem naming the file or flag and the field,
print no traceback, and write nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ultra_async.cli.main import main
from ultra_async.exitcodes import EXIT_USAGE

BASE = """\
defaults:
  timeouts: {connect_s: 10, read_s: 300, total_s: 300}
  retry: {max_attempts: 3, base_delay_s: 1.0, max_delay_s: 60, test_deadline_s: 900}
  burst: 2
  grace_s: 10
keys:
  k0: {env: FUZZ_KEY_0, qps: 10, max_in_flight: 5}
providers:
  lab: {kind: openai, base_url: "https://lab.invalid/v1"}
models:
  qwen2.5-7b-instruct: {provider: lab, strategy: single, keys: [k0], workers: 2, qps: 10}
"""
MODEL = "models.qwen2.5-7b-instruct"


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


HUGE = "1" + "0" * 400
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6)
)

#: (id, file content, text every line must contain besides the file name)
CONFIGS: list[tuple[str, str | bytes, str]] = [
    ("binary", bytes(range(256)) * 4, "not UTF-8"),
    ("latin-1", BASE.replace("lab.invalid", "lab\xe9.invalid").encode("latin-1"), "not UTF-8"),
    ("utf-16", BASE.encode("utf-16"), "not UTF-8"),
    ("nul-bytes", BASE.replace("k0:", "k\x000:"), "NUL"),
    ("nested-5000", "a: " + "[" * 5000 + "]" * 5000, "nest"),
    ("nested-50", "x-deep: " + "[" * 50 + "]" * 50 + "\n" + BASE, "x-deep"),
    ("nested-maps", "x-deep: " + "{a: " * 40 + "1" + "}" * 40 + "\n" + BASE, "x-deep"),
    ("billion-laughs", LAUGHS + BASE, "values"),
    ("too-large", BASE + "#" * (1 << 20) + "\n", "larger than"),
    ("empty", "", "expected a mapping"),
    ("a-list", "- 1\n- 2\n", "expected a mapping"),
    ("a-string", "hello", "expected a mapping"),
    ("bad-yaml", BASE + "models: [unclosed\n", "invalid YAML"),
    ("bad-indent", BASE.replace("  lab:", "lab:\n   x: 1\n  y:"), "invalid YAML"),
    ("python-tag", BASE + "x-evil: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
    ("qps-inf", edit("workers: 2, qps: 10", "workers: 2, qps: .inf"), f"{MODEL}.qps"),
    ("qps-nan", edit("workers: 2, qps: 10", "workers: 2, qps: .nan"), f"{MODEL}.qps"),
    ("qps-neg-inf", edit("workers: 2, qps: 10", "workers: 2, qps: -.inf"), f"{MODEL}.qps"),
    ("qps-max-inf", edit("qps: 10}\n", "qps: {start: 5, max: .inf}}\n"), f"{MODEL}.qps.max"),
    ("workers-inf", edit("workers: 2,", "workers: .inf,"), f"{MODEL}.workers"),
    ("workers-nan", edit("workers: 2,", "workers: .NaN,"), f"{MODEL}.workers"),
    ("workers-start-nan", edit("workers: 2,", "workers: {start: .nan},"), f"{MODEL}.workers"),
    ("total-inf", edit("total_s: 300", "total_s: .inf"), "defaults.timeouts.total_s"),
    ("connect-nan", edit("connect_s: 10", "connect_s: .nan"), "defaults.timeouts.connect_s"),
    ("read-overflow", edit("read_s: 300", "read_s: 1.0e+400"), "defaults.timeouts.read_s"),
    ("grace-inf", edit("grace_s: 10", "grace_s: .inf"), "defaults.grace_s"),
    ("delay-nan", edit("base_delay_s: 1.0", "base_delay_s: .nan"), "defaults.retry.base_delay_s"),
    ("deadline-inf", edit("test_deadline_s: 900", "test_deadline_s: .inf"), "test_deadline_s"),
    ("burst-inf", edit("burst: 2", "burst: .inf"), "defaults.burst"),
    ("key-qps-nan", edit("qps: 10, max", "qps: .nan, max"), "keys.k0.qps"),
    (
        "workers-absurd",
        edit("workers: 2,", "workers: 100000,"),
        f"{MODEL}.workers: must be at most",
    ),
    ("workers-huge-int", edit("workers: 2,", f"workers: {HUGE},"), f"{MODEL}.workers"),
    ("qps-absurd", edit("workers: 2, qps: 10", "workers: 2, qps: 1000000000"), f"{MODEL}.qps"),
    (
        "qps-tiny",
        edit("workers: 2, qps: 10", "workers: 2, qps: 1.0e-300"),
        f"{MODEL}.qps: must be at least",
    ),
    ("key-qps-tiny", edit("qps: 10, max", "qps: 1.0e-300, max"), "keys.k0.qps"),
    ("burst-absurd", edit("burst: 2", "burst: 1000000000"), "defaults.burst: must be at most"),
    ("in-flight-absurd", edit("max_in_flight: 5", f"max_in_flight: {HUGE}"), "max_in_flight"),
    ("attempts-absurd", edit("max_attempts: 3", "max_attempts: 1000000"), "max_attempts"),
    ("total-absurd", edit("total_s: 300", "total_s: 1000000000"), "total_s: must be at most"),
    ("grace-absurd", edit("grace_s: 10", "grace_s: 10000000"), "grace_s: must be at most"),
    ("keys-absurd", edit("keys: [k0]", "keys: [" + ", ".join(["k0"] * 500) + "]"), f"{MODEL}.keys"),
    ("workers-bool", edit("workers: 2,", "workers: true,"), f"{MODEL}.workers"),
    ("qps-word", edit("workers: 2, qps: 10", "workers: 2, qps: fast"), f"{MODEL}.qps"),
    ("total-zero", edit("total_s: 300", "total_s: 0"), "defaults.timeouts.total_s"),
    ("url-ftp", edit("https://lab.invalid/v1", "ftp://lab.invalid/v1"), "providers.lab.base_url"),
    ("url-no-host", edit('"https://lab.invalid/v1"', '"https://"'), "providers.lab.base_url"),
    ("url-userinfo", edit("https://lab", "https://me:pw@lab"), "providers.lab.base_url"),
    ("url-port", edit("lab.invalid/v1", "lab.invalid:99999/v1"), "providers.lab.base_url"),
    ("url-space", edit("lab.invalid/v1", "lab invalid/v1"), "providers.lab.base_url"),
    ("url-query", edit("lab.invalid/v1", "lab.invalid/v1?x=1"), "providers.lab.base_url"),
    ("url-words", edit('"https://lab.invalid/v1"', '"not a url"'), "providers.lab.base_url"),
    ("url-newline", edit('"https://lab.invalid/v1"', '"https://lab.invalid/v1\\n"'), "base_url"),
    ("unknown-field", edit("workers: 2,", "wokers: 2,"), f"{MODEL}.wokers"),
    ("version-2", "version: 2\n" + BASE, "version"),
    ("key-in-env", edit("env: FUZZ_KEY_0", "env: sk-abcdefghijklmnopqrstuvwx"), "keys.k0.env"),
    ("odd-key-name", edit("models:\n  qwen", 'models:\n  "a\\nb": 1\n  qwen'), "models.a\\nb"),
]


assert len(CONFIGS) >= 40, "the suite promises at least 40 broken configs"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory: anything a command writes by mistake shows up here."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def assert_refused(
    code: int | str | None, err: str, out: str, needle: str, workdir: Path, label: str, count: int
) -> None:
    lines = err.strip().splitlines()
    assert code == EXIT_USAGE, (code, err)
    assert "Traceback" not in err + out, err
    assert len(lines) == count, lines  # one line per problem
    for line in lines:
        assert line.startswith(f"{label}: "), line
    assert any(needle in line[len(label) :] for line in lines), (needle, lines)
    assert list(workdir.iterdir()) == [], "something was written"


@pytest.mark.parametrize(("name", "content", "needle"), CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_broken_config_is_one_line_and_exit_2(
    name: str,
    content: str | bytes,
    needle: str,
    command: str,
    workdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / f"{name}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    args = [command, "--providers", str(path)]
    if command == "run":
        args += ["--simulate", "--out", str(workdir / "out"), "--quiet"]
    code = main(args)
    captured = capsys.readouterr()
    # a misspelt field is two problems: the unknown name, and the required one now missing
    count = 2 if name == "unknown-field" else 1
    assert_refused(code, captured.err, captured.out, needle, workdir, str(path), count)


PROVIDERS = str(ROOT / "providers.yaml")
RUN = ["run", "--simulate", "--providers", PROVIDERS, "--out", "out", "--quiet"]

#: (id, argv, text the one line must contain)
FLAGS: list[tuple[str, list[str], str]] = [
    ("buffer-size-0", [*RUN, "--buffer-size", "0"], "--buffer-size"),
    ("buffer-size-negative", [*RUN, "--buffer-size", "-5"], "--buffer-size"),
    ("buffer-size-word", [*RUN, "--buffer-size", "three"], "--buffer-size"),
    ("buffer-size-huge", [*RUN, "--buffer-size", "1000000000"], "--buffer-size"),
    ("log-level-loud", [*RUN, "--log-level", "loud"], "--log-level"),
    ("log-level-empty", [*RUN, "--log-level", ""], "--log-level"),
    ("out-empty", [*RUN, "--out", ""], "--out"),
    ("out-blank", [*RUN, "--out", "   "], "--out"),
    ("instances-2e9", [*RUN, "--instances", "2000000000"], "--instances"),
    ("instances-0", [*RUN, "--instances", "0"], "--instances"),
    ("instances-negative", [*RUN, "--instances", "-3"], "--instances"),
    ("instances-fraction", [*RUN, "--instances", "1.5"], "--instances"),
    ("instances-overflow", [*RUN, "--instances", "9" * 5000], "--instances"),
    (
        "plan-too-large",
        [*RUN, "--instances", "1000000", "--prompt-types", "all_with_flawed"],
        "--instances",
    ),
    ("seed-negative", [*RUN, "--seed", "-1"], "--seed"),
    ("seed-huge", [*RUN, "--seed", "9" * 30], "--seed"),
    ("seed-word", [*RUN, "--seed", "x"], "--seed"),
    ("providers-empty", ["run", "--simulate", "--providers", "", "--out", "out"], "--providers"),
    ("rates-nan", [*RUN, "--rates", "nan"], "tool success rate"),
    ("rates-two", [*RUN, "--rates", "2"], "tool success rate"),
    ("rates-empty", [*RUN, "--rates", ","], "tool success rate"),
    ("models-unknown", [*RUN, "--models", "gpt-9"], "model"),
    ("prompt-types-unknown", [*RUN, "--prompt-types", "shouting"], "prompt type"),
    ("difficulties-unknown", [*RUN, "--difficulties", "impossible"], "difficult"),
    ("task-types-empty", [*RUN, "--task-types", ""], "task type"),
    ("unknown-flag", [*RUN, "--bogus"], "--bogus"),
    ("plan-format", ["plan", "--providers", PROVIDERS, "--format", "xml"], "--format"),
    ("plan-instances", ["plan", "--providers", PROVIDERS, "--instances", "0"], "--instances"),
    ("db-out-empty", ["db", "check", "--out", ""], "--out"),
    ("db-export-format", ["db", "export", "--format", "xml"], "--format"),
    ("no-command", [], "COMMAND"),
    ("report-out-empty", ["report", "--out", ""], "--out"),
    ("report-html-empty", ["report", "--html", ""], "--html"),
    ("report-plot-blank", ["report", "--plot", "  "], "--plot"),
    ("view-out-empty", ["view", "--out", ""], "--out"),
    ("cache-out-empty", ["cache", "stats", "--out", ""], "--out"),
    ("cache-dir-empty", [*RUN, "--cache-dir", ""], "--cache-dir"),
    ("sim-port-huge", ["serve-sim", "--providers", PROVIDERS, "--port", "99999"], "--port"),
    ("sim-port-negative", ["serve-sim", "--providers", PROVIDERS, "--port", "-1"], "--port"),
    ("sim-hang-inf", ["serve-sim", "--providers", PROVIDERS, "--hang-s", "inf"], "--hang-s"),
    (
        "sim-latency-nan",
        ["serve-sim", "--providers", PROVIDERS, "--latency-ms", "nan"],
        "--latency-ms",
    ),
]


assert len(FLAGS) >= 20, "the suite promises at least 20 bad command-line values"


@pytest.mark.parametrize(("name", "argv", "needle"), FLAGS, ids=[f[0] for f in FLAGS])
def test_bad_flag_is_one_line_and_exit_2(
    name: str, argv: list[str], needle: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code: int | str | None = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == EXIT_USAGE, (code, captured.err)
    assert len(lines) == 1, lines
    assert needle in lines[0], lines
    assert "Traceback" not in captured.err + captured.out
    assert list(workdir.iterdir()) == [], "something was written"


@pytest.mark.parametrize(
    ("variable", "value"), [("ULTRA_ASYNC_LOG_LEVEL", "loud"), ("ULTRA_ASYNC_OUT", "")]
)
def test_bad_settings_variable_is_one_line(
    variable: str,
    value: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    argv = ["run", "--simulate", "--providers", PROVIDERS, "--quiet"]
    if variable != "ULTRA_ASYNC_OUT":
        argv += ["--out", "out"]
    assert main(argv) == EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"${variable}" in lines[0], lines
    assert list(workdir.iterdir()) == []


def test_base_url_from_the_environment_is_checked(
    write_yaml: Callable[[str], Path],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_yaml(edit("kind: openai,", "kind: openai, base_url_env: FUZZ_URL,"))
    monkeypatch.setenv("FUZZ_URL", "https://user:secret@lab.invalid/v1")
    code = main(["run", "--simulate", "--providers", str(path), "--out", "out", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.strip().splitlines() == [
        "$FUZZ_URL (base URL of lab): must not hold a user name or password; "
        "keys belong in the environment"
    ]
    assert "secret" not in err
    assert list(workdir.iterdir()) == []


@pytest.mark.slow
def test_one_case_end_to_end_in_a_subprocess(tmp_path: Path) -> None:
    """The same promise through `python -m ultra_async`, interpreter start-up and all."""
    import subprocess

    bad = tmp_path / "p.yaml"
    bad.write_text(edit("workers: 2, qps: 10", "workers: 2, qps: .nan"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ULTRA_ASYNC_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ultra_async", "run", "--providers", str(bad), "--out", "o"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.splitlines() == [f"{bad}: {MODEL}.qps: must be a finite number (got .nan)"]
    assert not (tmp_path / "o").exists()
