"""loss("auto") trains the model's own words; "trl" / explicit assistant_only_loss: false keep TRL's default;
roles= picks the messages trained (axolotl's roles_to_train)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trl_sft_kit import RecipeError, SFTRecipe
from trl_sft_kit.data.masks import tokenize_conversation
from trl_sft_kit.inspection import InspectReport, RenderedRow
from trl_sft_kit.testing import tiny_tokenizer

SYSTEM = "You can call the weather tool. Answer briefly."
USER = "What is the weather in Paris?"
CALL = {"name": "weather", "arguments": {"city": "Paris"}}
TOOL_OUTPUT = "sunny, 21 C"
REPLY = "It is sunny in Paris, 21 degrees."
TOOLS = [{"name": "weather", "description": "The weather in a city now.", "parameters": {"type": "object"}}]


def glaive_row() -> dict[str, Any]:
    """A ShareGPT row with tool calls, shaped like LLaMA-Factory's glaive_toolcall_en_demo.json."""
    return {
        "conversations": [
            {"from": "human", "value": USER},
            {"from": "function_call", "value": json.dumps(CALL)},
            {"from": "observation", "value": TOOL_OUTPUT},
            {"from": "gpt", "value": REPLY},
        ],
        "system": SYSTEM,
        "tools": json.dumps(TOOLS),
    }


def trained(row: RenderedRow) -> str:
    return "".join(segment.text for segment in row.segments if segment.loss)


def untrained(row: RenderedRow) -> str:
    return "".join(segment.text for segment in row.segments if not segment.loss)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture()
def glaive_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "glaive.json", [glaive_row(), glaive_row()])


def inspect(tiny_model_dir: Path, data: Path, recipe: SFTRecipe | None = None) -> InspectReport:
    return (recipe or SFTRecipe()).model(tiny_model_dir).dataset(data).inspect(rows=1)


def test_auto_on_messages_trains_the_assistant_turns_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": USER},
                {"role": "assistant", "content": REPLY},
            ]
        }
    ]
    report = inspect(tiny_model_dir, write_jsonl(tmp_path / "chat.jsonl", rows))
    assert report.loss_mode == "auto" and report.tokenization.loss == "assistant_only"
    assert trained(report.rows[0]) == REPLY + "<|im_end|>\n"
    assert SYSTEM in untrained(report.rows[0]) and USER in untrained(report.rows[0])
    tokens = report.tokenization
    assert 0 < tokens.trained_tokens < tokens.tokens / 2
    share = f"{tokens.trained_tokens / tokens.tokens:.1%}"
    assert f"({share}: assistant turns: replies, reasoning, tool calls and their end of turn)" in str(report)
    assert f"({share}: assistant turns" in tokens.summary()  # the training log's line


def test_auto_on_sharegpt_with_tool_calls_trains_calls_and_replies_not_tool_outputs(
    tiny_model_dir: Path, glaive_file: Path
) -> None:
    report = inspect(tiny_model_dir, glaive_file)
    row = report.rows[0]
    text = trained(row)
    assert '"name": "weather"' in text and '"city": "Paris"' in text  # the tool call
    assert REPLY in text and text.count("<|im_end|>") == 2  # both turns, each with its end of turn
    for prompt in (SYSTEM, USER, TOOL_OUTPUT, "The weather in a city now."):
        assert prompt not in text and prompt in untrained(row)
    tokens = report.tokenization
    assert tokens.trained_tokens < tokens.tokens / 2


def test_trl_mode_and_all_train_every_token_of_the_tool_conversation(
    tiny_model_dir: Path, glaive_file: Path
) -> None:
    for recipe in (SFTRecipe().loss("trl"), SFTRecipe().loss("all")):
        report = inspect(tiny_model_dir, glaive_file, recipe)
        assert report.tokenization.trained_tokens == report.tokenization.tokens
        assert TOOL_OUTPUT in trained(report.rows[0])


def test_auto_on_prompt_completion_trains_the_completion(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "The sky is", "completion": " blue."}])
    report = inspect(tiny_model_dir, data)
    assert report.tokenization.loss == "completion_only"
    assert trained(report.rows[0]) == " blue.<|im_end|>"
    assert "the completion" in str(report)


def test_auto_on_plain_text_trains_everything(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "notes.jsonl", [{"text": "Plain notes about the sky."}])
    report = inspect(tiny_model_dir, data)
    assert report.tokenization.trained_tokens == report.tokenization.tokens
    assert "every token" in str(report)


@pytest.mark.parametrize(
    "flat",
    [
        {"assistant_only_loss": False},
        {"assistant_only_loss": False, "completion_only_loss": None},
    ],
)
def test_an_explicit_assistant_only_loss_false_keeps_training_every_token(
    flat: dict[str, Any], tiny_model_dir: Path, glaive_file: Path, tmp_path: Path
) -> None:
    """Existing flat stage configs (TRL-style keys) train as before: every token of conversations, the
    completion of prompt-completion rows."""
    from trl_sft_kit.stage import TRLSFTConfig

    recipe = SFTRecipe.from_dict(flat)
    assert recipe.loss_spec.mode == "trl"
    stage = TRLSFTConfig(dataset_name_or_path=str(glaive_file), **flat).to_recipe()
    assert stage.loss_spec.mode == "trl"
    report = inspect(tiny_model_dir, glaive_file, recipe)
    assert report.tokenization.trained_tokens == report.tokenization.tokens
    data = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "The sky is", "completion": " blue."}])
    assert trained(inspect(tiny_model_dir, data, recipe).rows[0]) == " blue.<|im_end|>"
    assert SFTRecipe.from_dict(recipe.to_dict()) == recipe  # round trip


def test_unset_keys_take_the_new_auto() -> None:
    from trl_sft_kit.stage import TRLSFTConfig

    assert SFTRecipe.from_dict({"assistant_only_loss": None}).loss_spec.mode == "auto"
    assert TRLSFTConfig(dataset_name_or_path="chats.jsonl").to_recipe().loss_spec.mode == "auto"


def test_roles_train_tool_calls_only_or_the_system_prompt_too(
    tiny_model_dir: Path, glaive_file: Path
) -> None:
    calls = inspect(tiny_model_dir, glaive_file, SFTRecipe().loss("assistant_only", roles=("tool_call",)))
    text = trained(calls.rows[0])
    assert '"city": "Paris"' in text and REPLY not in text and text.count("<|im_end|>") == 1
    assert "assistant turns that call a tool" in str(calls)

    recipe = SFTRecipe().loss("assistant_only", roles=("assistant", "system"))
    with_system = inspect(tiny_model_dir, glaive_file, recipe)
    text = trained(with_system.rows[0])
    assert SYSTEM in text and REPLY in text and '"city": "Paris"' in text
    assert USER not in text and TOOL_OUTPUT not in text
    assert "system messages" in str(with_system)
    assert SFTRecipe.from_dict(recipe.to_dict()).loss_spec.roles == ("assistant", "system")
    assert "roles=('assistant', 'system')" in recipe.model(tiny_model_dir).explain()


def test_roles_on_the_mask_level_train_tool_outputs_and_user_turns() -> None:
    tokenizer = tiny_tokenizer("qwen2_5")
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": USER},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": CALL}]},
        {"role": "tool", "content": TOOL_OUTPUT},
        {"role": "assistant", "content": REPLY},
    ]
    masked = tokenize_conversation(tokenizer, messages, roles=("tool", "user"))
    assert tokenizer.decode(masked.trained_ids()) == USER + TOOL_OUTPUT
    assert [span.message_index for span in masked.spans] == [0, 2]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: SFTRecipe().loss("assistant_only", roles=("asistant",)), "did you mean 'assistant'"),
        (lambda: SFTRecipe().loss("assistant_only", roles=("gpt",)), "'gpt' turn is 'assistant'"),
        (lambda: SFTRecipe().loss("assistant_only", roles=()), "non-empty"),
        (lambda: SFTRecipe().loss("all", roles=("system",)), "needs loss('assistant_only'"),
        (lambda: SFTRecipe.from_dict({"loss": {"mode": "assistant_only", "roles": ["bot"]}}), "'bot'"),
    ],
)
def test_bad_role_names_are_clear_errors(call: Any, message: str) -> None:
    with pytest.raises(RecipeError, match="role") as caught:
        call()
    assert message in str(caught.value)


def test_roles_on_prompt_completion_data_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "The sky is", "completion": " blue."}])
    with pytest.raises(RecipeError, match="choose messages of conversations"):
        inspect(tiny_model_dir, data, SFTRecipe().loss("assistant_only", roles=("system",)))


def test_explain_says_what_auto_trains(tiny_model_dir: Path) -> None:
    text = SFTRecipe().model(tiny_model_dir).explain()
    assert "loss: auto - the model's own words: assistant turns for conversations" in text
    assert "TRL's default" in SFTRecipe().model(tiny_model_dir).loss("trl").explain()
