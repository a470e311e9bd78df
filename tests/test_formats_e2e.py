"""Every built-in format trains end to end through ``SFTRecipe().dataset(path)`` with no format argument.

One tiny real model, two LoRA steps per format; the detected format is read from the compiled report. A
third-party detector, installed as the example package ``examples/format_plugin``, is found through its
entry point and trains the same way.
"""

from __future__ import annotations

import contextlib
import json
import math
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import SFTRecipe
from trl_sft_kit.formats import FormatOptions, available_formats
from trl_sft_kit.testing import QA_PAIRS, sample_rows

pytestmark = pytest.mark.slow

PLUGIN_DISTRIBUTION = "sft-kit-dialogue-format"


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _conversational_prompt_completion(n: int) -> list[dict[str, Any]]:
    return [
        {
            "prompt": [{"role": "user", "content": question}],
            "completion": [{"role": "assistant", "content": answer}],
        }
        for question, answer in QA_PAIRS[:n]
    ]


def _tool_calls(n: int) -> list[dict[str, Any]]:
    """Chat rows, every other one calling a tool with arguments of its own shape (and a float)."""
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    rows: list[dict[str, Any]] = []
    for index, (question, answer) in enumerate(QA_PAIRS[:n]):
        if index % 2:
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer},
                    ]
                }
            )
            continue
        call = {"type": "function", "function": {"name": "lookup", "arguments": {f"key{index}": index + 0.5}}}
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "content": answer},
                    {"role": "assistant", "content": answer},
                ],
                "tools": tools,
            }
        )
    return rows


def _dataset_file(tmp_path: Path, kind: str) -> Path:
    if kind == "txt":
        path = tmp_path / "corpus.txt"
        path.write_text("\n".join(f"{q} {a}" for q, a in QA_PAIRS[:16]) + "\n", encoding="utf-8")
        return path
    if kind == "conversational_prompt_completion":
        return _write_jsonl(tmp_path / f"{kind}.jsonl", _conversational_prompt_completion(16))
    if kind == "tool_calls":
        return _write_jsonl(tmp_path / f"{kind}.jsonl", _tool_calls(16))
    return _write_jsonl(tmp_path / f"{kind}.jsonl", sample_rows(kind, 16))


def _train(
    tiny_model_dir: Path, fast_training: dict[str, Any], source: Any, **fields: Any
) -> tuple[Any, Any]:
    fields = {**fast_training, "max_steps": 2, **fields}
    compiled = SFTRecipe().model(tiny_model_dir).dataset(source).lora(r=4).training(**fields).compile()
    return compiled, compiled.train()


@pytest.mark.parametrize(
    ("kind", "detected", "canonical"),
    [
        ("messages", "messages", "messages"),
        ("tool_calls", "messages", "messages"),
        ("sharegpt", "sharegpt", "messages"),
        ("alpaca", "alpaca", "prompt_completion"),
        ("instruction_response", "instruction_response", "prompt_completion"),
        ("prompt_completion", "prompt_completion", "prompt_completion"),
        ("conversational_prompt_completion", "prompt_completion", "prompt_completion"),
        ("text", "text", "text"),
        ("txt", "text", "text"),
    ],
)
def test_each_format_is_detected_and_trains(
    tiny_model_dir: Path,
    fast_training: dict[str, Any],
    tmp_path: Path,
    kind: str,
    detected: str,
    canonical: str,
) -> None:
    # Qwen's tool preamble alone is longer than 128 tokens.
    length = {"max_length": 512} if kind == "tool_calls" else {}
    compiled, result = _train(tiny_model_dir, fast_training, _dataset_file(tmp_path, kind), **length)
    assert (compiled.report.format, compiled.report.canonical) == (detected, canonical)
    assert compiled.report.rows_kept == compiled.report.rows_read == 16
    assert f"format {detected!r} (detected on 16 of 16 rows)" in compiled.report.summary()
    assert result.global_step == 2
    assert result.losses and all(math.isfinite(loss) for loss in result.losses)
    if canonical == "messages":  # what the model saw: standard roles, tool calls with their arguments
        trained = compiled.trainer.processing_class.decode(compiled.trainer.train_dataset[0]["input_ids"])
        assert "<|im_start|>assistant\n" in trained
        assert "<|im_start|>gpt" not in trained
        if kind == "tool_calls":
            assert '<tool_call>\n{"name": "lookup", "arguments": {"key0": 0.5}}\n</tool_call>' in trained


def test_skip_mode_trains_on_the_good_rows_and_reports_the_rest(
    tiny_model_dir: Path, fast_training: dict[str, Any], tmp_path: Path
) -> None:
    rows = sample_rows("sharegpt", 12)
    lines = [json.dumps(row) for row in rows]
    lines[3] = json.dumps(
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "x"}]}
    )
    lines[7] = '{"conversations": ['
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    compiled = (
        SFTRecipe()
        .model(tiny_model_dir)
        .dataset(path, on_bad_rows="skip")
        .lora(r=4)
        .training(**fast_training, max_steps=1)
    ).compile()
    report = compiled.report
    assert (report.rows_read, report.rows_kept) == (12, 10)
    assert [(row.where, row.field) for row in report.skipped] == [
        ("line 4", "conversations[1].from"),
        ("line 8", None),
    ]
    assert "not valid JSON" in report.skipped[1].reason
    assert len(compiled.trainer.train_dataset) == 10
    assert all(math.isfinite(loss) for loss in compiled.train().losses)


# -------------------------------------------------------------------------------------- a plug-in


def _plugin_version() -> str:
    try:
        return metadata.version(PLUGIN_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pytest.skip(
            f"the example plug-in {PLUGIN_DISTRIBUTION} is not installed; run "
            "pip install --no-deps -e examples/format_plugin"
        )


def test_an_installed_plugin_is_listed_with_its_distribution() -> None:
    version = _plugin_version()
    (registration,) = [r for r in available_formats() if r.name == "dialogue"]
    assert registration.provider == f"{PLUGIN_DISTRIBUTION} {version}"
    assert repr(registration) == f"<DialogueFormat 'dialogue' from {PLUGIN_DISTRIBUTION} {version}>"


def test_an_installed_plugin_is_detected_converts_and_trains(
    tiny_model_dir: Path, fast_training: dict[str, Any]
) -> None:
    _plugin_version()
    rows = [
        {"dialogue": [question, answer], "persona": "Answer in one sentence."}
        for question, answer in QA_PAIRS
    ]
    compiled, result = _train(tiny_model_dir, fast_training, rows[:16])
    assert (compiled.report.format, compiled.report.canonical) == ("dialogue", "messages")
    assert "'dialogue' is a list of turn strings" in compiled.report.detection
    assert compiled.trainer.train_dataset is not None
    assert result.global_step == 2
    assert all(math.isfinite(loss) for loss in result.losses)


def test_an_installed_plugin_meets_the_property_tests_downstream_repos_can_run() -> None:
    """What a plug-in's own repository can check with ``trl_sft_kit.testing.strategies``."""
    _plugin_version()
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from trl_sft_kit.errors import RowError
    from trl_sft_kit.formats import get_format
    from trl_sft_kit.testing.strategies import RowCase, cases, json_values, texts

    dialogue = get_format("dialogue")
    quick = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))

    @quick
    @given(cases())
    def builtin_rows_are_not_claimed(case: RowCase) -> None:
        assert not dialogue.match(case.row, case.options)

    @quick
    @given(st.lists(texts(), min_size=2, max_size=6), st.one_of(st.none(), texts()))
    def dialogue_rows_convert_losslessly(turns: list[str], persona: str | None) -> None:
        row = {"dialogue": turns, "persona": persona}
        converted = dialogue.convert(row, FormatOptions())
        assert [m["content"] for m in converted["messages"] if m["role"] != "system"] == turns
        assert get_format("messages").convert(converted, FormatOptions()) == converted

    @quick
    @given(json_values(), json_values())
    def junk_raises_row_errors_only(turns: Any, persona: Any) -> None:
        row = {"dialogue": turns, "persona": persona}
        dialogue.match(row, FormatOptions())
        with contextlib.suppress(RowError):
            dialogue.convert(row, FormatOptions())

    builtin_rows_are_not_claimed()
    dialogue_rows_convert_losslessly()
    junk_raises_row_errors_only()
