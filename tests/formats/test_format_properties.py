"""Properties of detection and conversion, over rows from the exported strategies (``trl_sft_kit.testing``).

A generated row of format F is detected as F and no other; conversion is pure, deterministic, keeps every
piece of text and gives a canonical row that converting again leaves as it is; junk rows and junk datasets
raise only the kit's own errors.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trl_sft_kit.data import RawRows, convert_rows
from trl_sft_kit.data.prepare import json_read_back_problems, to_dataset
from trl_sft_kit.errors import DatasetError, DatasetFormatError, RowError, SFTKitError
from trl_sft_kit.formats import (
    PREFERENCE_FORMAT,
    FormatOptions,
    RowExcludedError,
    available_formats,
    detect_format,
    get_format,
)
from trl_sft_kit.plugins import BUILTIN
from trl_sft_kit.specs import DatasetSpec
from trl_sft_kit.testing.strategies import (
    BUILTIN_FORMATS,
    RowCase,
    case_lists,
    cases,
    junk,
    junk_datasets,
    strings_in,
)

CANONICAL_KEYS = {
    "messages": ({"messages"}, {"messages", "tools"}),
    "prompt_completion": ({"prompt", "completion"}, {"prompt", "completion"}),
    "text": ({"text"}, {"text"}),
}
BUILTINS = [registration.plugin for registration in available_formats() if registration.provider == BUILTIN]
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_the_strategies_cover_every_builtin_format() -> None:
    assert set(BUILTIN_FORMATS) == {detector.name for detector in BUILTINS}
    with pytest.raises(ValueError, match="no strategy for format 'nope'"):
        cases("nope")


# -------------------------------------------------------------------------------------- detection


@SETTINGS
@given(cases())
def test_a_generated_row_is_detected_as_its_format_and_no_other(case: RowCase) -> None:
    own = get_format(case.format).match(case.row, case.options)
    assert own, own.reason
    for detector in BUILTINS:
        if detector.name != case.format:
            other = detector.match(case.row, case.options)
            assert other.score < own.score, (detector.name, other.reason)
    if case.format == PREFERENCE_FORMAT:
        with pytest.raises(DatasetFormatError, match="preference data, not SFT data"):
            detect_format([case.row], 1, case.options)
    else:
        detection = detect_format([case.row], 1, case.options)
        assert (detection.format, detection.sampled_rows) == (case.format, 1)
        assert detection.reason in detection.describe()


@settings(SETTINGS, max_examples=60)
@given(case_lists())
def test_a_list_of_generated_rows_is_detected_as_their_format(found: list[RowCase]) -> None:
    rows, name, options = [case.row for case in found], found[0].format, found[0].options
    if name == PREFERENCE_FORMAT:
        with pytest.raises(DatasetFormatError, match=f"format={PREFERENCE_FORMAT!r}"):
            detect_format(rows, len(rows), options)
        assert detect_format(rows, len(rows), options, forced=name).format == name
    else:
        detection = detect_format(rows, len(rows), options)
        assert (detection.format, detection.sampled_rows) == (name, len(rows))
        assert detection.total_rows == len(rows)


# -------------------------------------------------------------------------------------- conversion


@SETTINGS
@given(cases())
def test_conversion_is_pure_deterministic_lossless_and_canonical(case: RowCase) -> None:
    detector = get_format(case.format)
    before = copy.deepcopy(case.row)
    if case.excluded:
        with pytest.raises(RowExcludedError) as caught:
            detector.convert(case.row, case.options)
        assert caught.value.field == "label"
        return
    converted = detector.convert(case.row, case.options)
    assert case.row == before, "convert mutated its input"
    assert detector.convert(case.row, case.options) == converted, "convert is not deterministic"
    assert json.loads(json.dumps(converted)) == converted, "the canonical row is not plain JSON"
    required, allowed = CANONICAL_KEYS[detector.canonical]
    assert required <= set(converted) <= allowed
    outputs = list(strings_in(converted))
    for text in case.texts:
        assert any(text in output for output in outputs), f"{text!r} was lost"
    if case.tools is None:
        assert "tools" not in converted
    else:
        assert json.loads(converted["tools"]) == case.tools
    if case.joined:
        assert converted["prompt"] + converted["completion"] == case.row["chosen"]
    for message in converted.get("messages", []):
        for call in message.get("tool_calls", []):
            assert call["type"] == "function"
            assert isinstance(call["function"]["arguments"], dict)


@SETTINGS
@given(cases())
def test_converting_a_canonical_row_again_changes_nothing(case: RowCase) -> None:
    detector = get_format(case.format)
    if case.excluded:
        return
    once = detector.convert(case.row, case.options)
    canonical = get_format(detector.canonical)
    plain = FormatOptions(chat=case.options.chat)
    assert canonical.convert(once, plain) == once
    assert detect_format([once], 1, plain).format == detector.canonical


# Tool calls with empty and 64-bit-edge arguments, reasoning and typed text parts, and floats that Python's
# json writes with digits pandas' parser (datasets' Json reader) drops: 0.085018736099916 was read back.
_TOOL_ROUND_TRIP = RowCase(
    "messages",
    {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "0"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"name": "_", "arguments": {}}]},
            {"role": "tool", "content": "0"},
            {"role": "assistant", "content": [{"type": "text", "text": "0"}], "reasoning_content": "0"},
            {"role": "user", "content": "0"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "arguments": {"a": 0.08501873609991611, "b": -0.00022552157890716},
                        },
                    },
                    {"name": "g", "arguments": {"low": -(2**63), "high": 2**64 - 1}},
                ],
            },
            {"role": "tool", "content": "0"},
            {"role": "assistant", "content": "0"},
        ]
    },
    ("0", "_", "f", "g"),
)


@example([_TOOL_ROUND_TRIP])
@settings(SETTINGS, max_examples=40)
@given(case_lists())
def test_canonical_rows_survive_a_datasets_round_trip(found: list[RowCase]) -> None:
    detector = get_format(found[0].format)
    rows = [detector.convert(case.row, case.options) for case in found if not case.excluded]
    if not rows or (rows[0].keys() >= {"prompt"} and len({isinstance(r["prompt"], list) for r in rows}) > 1):
        return  # nothing kept, or string and message prompts mixed (refused by convert_rows)
    dataset = to_dataset(rows)
    problems = json_read_back_problems(dataset, rows, [f"row {index}" for index in range(len(rows))])
    for index, original in enumerate(rows):
        stored = dataset[index]
        assert all(value is None for key, value in stored.items() if key not in original)
        stored = {key: value for key, value in stored.items() if key in original}
        if stored != original:
            # Only numbers datasets cannot hold exactly may differ (floats in their last digits, integers
            # beyond 64 bits, subnormals), and every such row is reported: never a silent change.
            assert any(problem.startswith(f"row {index},") for problem in problems), (stored, original)
            assert _same_shape(stored, original), (stored, original)


def _same_shape(left: Any, right: Any) -> bool:
    """Equal except where both sides hold numbers (which may have been read back changed)."""
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers) and not isinstance(left, bool):
        return not isinstance(right, bool)
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same_shape(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same_shape(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


# -------------------------------------------------------------------------------------- junk


@settings(SETTINGS, max_examples=300)
@given(junk(), st.booleans())
def test_junk_rows_raise_only_the_kits_dataset_errors(row: Any, chat: bool) -> None:
    options = FormatOptions(chat=chat)
    with contextlib.suppress(DatasetError):  # never a KeyError, TypeError, ... nor a PluginError
        name = detect_format([row], 1, options).format
        get_format(name).convert(row, options)
    if not isinstance(row, dict):
        return
    for detector in BUILTINS:  # every built-in, whatever detection says
        detector.match(row, options)
        with contextlib.suppress(RowError):
            converted = detector.convert(row, options)
            required, allowed = CANONICAL_KEYS[detector.canonical]
            assert required <= set(converted) <= allowed | {"tools"}
            assert get_format(detector.canonical).convert(converted, options) == converted


@settings(SETTINGS, max_examples=150)
@given(junk_datasets(), st.booleans())
def test_junk_datasets_raise_only_the_kits_errors(rows: list[Any], skip: bool) -> None:
    spec = DatasetSpec([{"text": "placeholder"}], on_bad_rows="skip" if skip else "error")
    raw = RawRows("junk.jsonl", rows, [("junk.jsonl", index + 1, index) for index in range(len(rows))])
    try:
        prepared = convert_rows(raw, spec, FormatOptions())
    except SFTKitError as exc:
        assert isinstance(exc, DatasetError), exc  # built-ins only: never a PluginError
        return
    report = prepared.report
    assert report.rows_read == len(rows) == report.rows_kept + len(report.skipped)
    assert len(prepared.rows) == report.rows_kept > 0
