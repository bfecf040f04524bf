"""The tag protocol: reading replies, and feedback that the simulated model can read back."""

from __future__ import annotations

from ultra_async.suites.workflow.protocol import (
    FORMAT_HELP,
    Action,
    feedback_message,
    info_feedback,
    parse_feedback,
    parse_reply,
    result_feedback,
    search_feedback,
)
from ultra_async.suites.workflow.tools import load_tools


def test_all_tags_in_order_with_completion() -> None:
    reply = parse_reply(
        "Plan first.\n<tool_search>read csv</tool_search>\n<tool_info>csv_parser</tool_info>\n"
        '<tool_call>file_reader {"path": "a.csv"}</tool_call> then TASK_COMPLETED'
    )
    assert reply.actions == (
        Action("search", "read csv"),
        Action("info", "csv_parser"),
        Action("call", "file_reader", {"path": "a.csv"}),
    )
    assert reply.completed and not reply.problems


def test_call_forms() -> None:
    forms = {
        "<tool_call>file_reader</tool_call>": Action("call", "file_reader"),
        "<TOOL_CALL> file_reader </TOOL_CALL>": Action("call", "file_reader"),
        '<tool_call>file_reader({"path": "x"})</tool_call>': Action(
            "call", "file_reader", {"path": "x"}
        ),
        "<tool_call>file_reader()</tool_call>": Action("call", "file_reader"),
        '<tool_call>{"name": "file_reader", "arguments": {"path": "x"}}</tool_call>': Action(
            "call", "file_reader", {"path": "x"}
        ),
    }
    for text, action in forms.items():
        assert parse_reply(text).actions == (action,)


def test_reasoning_blocks_are_ignored() -> None:
    reply = parse_reply("<think>maybe <tool_call>x</tool_call>, or TASK_COMPLETED</think>ok")
    assert reply.actions == () and not reply.completed


def test_malformed_tags_are_problems_not_actions() -> None:
    for text in (
        "<tool_call>file_reader",
        "I will call file_reader now.",
        '```json\n{"tool": "file_reader"}\n```',
    ):
        reply = parse_reply(text)
        assert reply.actions == () and not reply.completed
    bad_json = parse_reply("<tool_call>file_reader {path: 1}</tool_call>")
    assert bad_json.actions == () and len(bad_json.problems) == 1
    not_object = parse_reply("<tool_call>file_reader [1, 2]</tool_call>")
    assert not_object.problems
    empty = parse_reply("<tool_search> </tool_search>")
    assert empty.actions == () and empty.problems


def test_feedback_reads_back() -> None:
    tools = load_tools()
    text = feedback_message(
        [
            search_feedback("read file", [tools["file_reader"], tools["cache_reader"]]),
            search_feedback("zebra", []),
            info_feedback("csv_parser", tools["csv_parser"]),
            info_feedback("nope", None),
            result_feedback("file_reader", ok=True, detail="produced text"),
            result_feedback("csv_parser", ok=False, code="PARSE_ERROR", detail="failed"),
            FORMAT_HELP,
        ],
        turns_left=4,
    )
    events = parse_feedback(text)
    assert [(e.kind, e.target) for e in events] == [
        ("search", "read file"),
        ("search", "zebra"),
        ("info", "csv_parser"),
        ("info", "nope"),
        ("result", "file_reader"),
        ("result", "csv_parser"),
        ("format_help", ""),
    ]
    assert events[0].hits == ("file_reader", "cache_reader")
    assert events[1].hits == ()
    assert events[4].ok and events[4].code is None
    assert not events[5].ok and events[5].code == "PARSE_ERROR"
    assert text.endswith("(4 replies left)")
