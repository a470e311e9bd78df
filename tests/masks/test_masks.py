"""Loss masks: turn selection, per-message flags, reasoning, injected dates, prompt/completion, text, and
the end-of-turn check, on real tiny tokenizers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from trl_sft_kit.data.masks import (
    IGNORE_INDEX,
    MaskedTokens,
    TokenSpan,
    end_of_turn_trained,
    tokenize_conversation,
    tokenize_prompt_completion,
    tokenize_text,
)
from trl_sft_kit.errors import DatasetError, RowError
from trl_sft_kit.testing import bundled_chat_template

TokenizerFor = Callable[[str], Any]

CHAT = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What colour is the sky?"},
    {"role": "assistant", "content": "The sky is blue."},
    {"role": "user", "content": "And grass?"},
    {"role": "assistant", "content": "Grass is green."},
    {"role": "user", "content": "And snow?"},
    {"role": "assistant", "content": "Snow is white."},
]

#: The end-of-turn token (and separator) each template writes after an assistant reply.
END_OF_TURN = {
    "qwen2_5": "<|im_end|>\n",
    "llama3": "<|eot_id|>",
    "gemma3": "<end_of_turn>\n",
    "phi3": "<|end|>\n",
}


def pieces(tokenizer: Any, masked: MaskedTokens) -> list[str]:
    return [tokenizer.decode(masked.input_ids[s.start : s.end]) for s in masked.spans]


def test_result_shape(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("qwen2_5")
    masked = tokenize_conversation(tokenizer, CHAT)
    assert masked.input_ids == tokenizer.apply_chat_template(CHAT, return_dict=True)["input_ids"]
    assert masked.text == tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert len(masked.labels) == len(masked.input_ids)
    assert [s.message_index for s in masked.spans] == [2, 4, 6]
    assert all(isinstance(s, TokenSpan) and s.start < s.end for s in masked.spans)
    for k, label in enumerate(masked.labels):
        inside = any(s.start <= k < s.end for s in masked.spans)
        assert label == (masked.input_ids[k] if inside else IGNORE_INDEX)
    assert masked.num_trained == len(masked.trained_ids()) == sum(s.end - s.start for s in masked.spans)
    assert masked.end_of_turn_trained and end_of_turn_trained(tokenizer, masked)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        masked.labels = []  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(END_OF_TURN))
def test_every_assistant_turn_is_its_content_and_end_of_turn(name: str, tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for(name)
    messages = CHAT if name != "gemma3" else CHAT[1:]
    masked = tokenize_conversation(tokenizer, messages)
    eot = END_OF_TURN[name]
    assert pieces(tokenizer, masked) == [
        m["content"] + eot + ("<|end|>" if name == "phi3" and i == len(messages) - 1 else "")
        for i, m in enumerate(messages)
        if m["role"] == "assistant"
    ]  # phi3 appends the eos token after a conversation that ends with the assistant


def test_turns_last_trains_only_the_last_assistant_turn(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("llama3")
    masked = tokenize_conversation(tokenizer, [*CHAT, {"role": "user", "content": "Thanks!"}], turns="last")
    assert pieces(tokenizer, masked) == ["Snow is white.<|eot_id|>"]
    assert [s.message_index for s in masked.spans] == [6]
    with pytest.raises(ValueError, match="'turns'"):
        tokenize_conversation(tokenizer, CHAT, turns="first")  # type: ignore[arg-type]


def test_train_false_and_weight_zero_leave_a_turn_out(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("qwen2_5")
    flagged = [dict(m) for m in CHAT]
    flagged[2]["train"] = False
    flagged[4]["weight"] = 0
    flagged[6]["weight"] = 1.0
    masked = tokenize_conversation(tokenizer, flagged)
    assert pieces(tokenizer, masked) == ["Snow is white.<|im_end|>\n"]
    # the flags are not rendered: same ids as the conversation without them
    assert masked.input_ids == tokenize_conversation(tokenizer, CHAT).input_ids
    assert "train" not in masked.text and "weight" not in masked.text
    assert tokenize_conversation(tokenizer, flagged, turns="last").spans == masked.spans
    flagged[6]["train"] = False
    nothing = tokenize_conversation(tokenizer, flagged)
    assert nothing.num_trained == 0 and nothing.spans == () and nothing.end_of_turn_trained


def test_identical_replies_are_each_found_in_their_own_turn(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("phi3")
    messages = [m if m["role"] != "assistant" else {**m, "content": "Same."} for m in CHAT]
    masked = tokenize_conversation(tokenizer, messages)
    assert pieces(tokenizer, masked) == ["Same.<|end|>\n", "Same.<|end|>\n", "Same.<|end|>\n<|end|>"]
    ends = [s.end for s in masked.spans]
    assert ends == sorted(set(ends))


def test_qwen3_reasoning_of_earlier_turns_is_dropped_by_the_template(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("qwen3")
    messages = [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "<think>\n7 has no divisors.\n</think>\n\nYes, 7 is prime."},
        {"role": "user", "content": "Is 9 prime?"},
        {"role": "assistant", "content": "<think>\n9 = 3 * 3.\n</think>\n\nNo, 9 is not prime."},
    ]
    # Not prefix-stable: the first reply keeps its reasoning only while it is the last message, so a
    # span taken from a separately rendered prefix would be off.
    prefix = tokenizer.apply_chat_template(messages[:2], tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    assert "7 has no divisors" in prefix and "7 has no divisors" not in full
    assert not full.startswith(prefix)
    masked = tokenize_conversation(tokenizer, messages)
    expected = [
        "Yes, 7 is prime.<|im_end|>\n",
        "<think>\n9 = 3 * 3.\n</think>\n\nNo, 9 is not prime.<|im_end|>\n",
    ]
    assert pieces(tokenizer, masked) == expected
    # the same with the reasoning in reasoning_content
    separate = [
        {**m, "content": m["content"].split("\n\n")[-1], "reasoning_content": m["content"].split("\n")[1]}
        if m["role"] == "assistant"
        else m
        for m in messages
    ]
    assert pieces(tokenizer, tokenize_conversation(tokenizer, separate)) == expected


def test_qwen3_enable_thinking_false_prefills_the_empty_think_block(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("qwen3")
    masked = tokenize_conversation(tokenizer, CHAT[:3], template_kwargs={"enable_thinking": False})
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\nThe sky is blue." in masked.text
    assert pieces(tokenizer, masked) == ["The sky is blue.<|im_end|>\n"]  # the block is in the prompt


@pytest.mark.parametrize("name", ["llama3_1", "llama3_2"])
def test_templates_that_inject_the_date(name: str, tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for(name)
    results = [
        tokenize_conversation(tokenizer, CHAT, template_kwargs=kwargs)
        for kwargs in ({"date_string": "01 Jan 2020"}, {"date_string": "31 Dec 2030"}, None)
    ]
    assert "Today Date: 01 Jan 2020" in results[0].text and "Today Date: 31 Dec 2030" in results[1].text
    assert "Today Date: " in results[2].text  # llama3_2 asks strftime_now, llama3_1 has a default
    expected = ["The sky is blue.<|eot_id|>", "Grass is green.<|eot_id|>", "Snow is white.<|eot_id|>"]
    for masked in results:
        assert pieces(tokenizer, masked) == expected
        assert (
            masked.input_ids
            == tokenizer.apply_chat_template(
                CHAT, return_dict=True, date_string=masked.text.split("Today Date: ")[1][:11]
            )["input_ids"]
        )


def test_tools_as_a_json_string(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("qwen2_5")
    tools = [{"type": "function", "function": {"name": "now", "description": "Time.", "parameters": {}}}]
    as_list = tokenize_conversation(tokenizer, CHAT, tools=tools)
    assert '"name": "now"' in as_list.text
    assert tokenize_conversation(tokenizer, CHAT, tools=json.dumps(tools)) == as_list


def test_a_template_unknown_to_trl(tokenizer_for: TokenizerFor) -> None:
    template = (
        "{% for m in messages %}{% if m.role == 'user' %}### User:\n{{ m.content }}\n\n"
        "{% elif m.role == 'assistant' %}### Assistant:\n{{ m.content }}</s>\n\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
    )
    tokenizer = tokenizer_for(template)
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!\n\n### Assistant:\nquoted"},  # the header inside a reply
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Bye!"},
    ]
    masked = tokenize_conversation(tokenizer, messages)
    assert pieces(tokenizer, masked) == ["Hello!\n\n### Assistant:\nquoted</s>\n\n", "Bye!</s>\n\n"]


END_IN_NEXT_BLOCK = (
    "{% for m in messages %}{% if not loop.first %}<|end|>{% endif %}<|{{ m.role }}|>{{ m.content }}"
    "{% endfor %}{% if add_generation_prompt %}<|end|><|assistant|>{% endif %}"
)


def test_end_of_turn_written_by_the_next_message_is_refused(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for(END_IN_NEXT_BLOCK)
    messages = CHAT[1:5]
    assert tokenizer.apply_chat_template(messages, tokenize=False).count("<|end|>") == 3
    with pytest.raises(DatasetError, match="no end-of-turn token inside assistant message 1") as caught:
        tokenize_conversation(tokenizer, messages)
    assert "require_end_of_turn=False" in str(caught.value)
    masked = tokenize_conversation(tokenizer, messages, require_end_of_turn=False)
    assert not masked.end_of_turn_trained and not end_of_turn_trained(tokenizer, masked)
    assert pieces(tokenizer, masked) == ["The sky is blue.", "Grass is green."]
    with pytest.raises(DatasetError):  # the same as a completion
        tokenize_prompt_completion(tokenizer, messages[:1], messages[1:2])


def test_a_conversation_the_template_refuses(tokenizer_for: TokenizerFor) -> None:
    with pytest.raises(RowError, match="System role not supported") as caught:
        tokenize_conversation(tokenizer_for("gemma"), CHAT)
    assert caught.value.field == "messages"
    with pytest.raises(RowError, match="no messages"):
        tokenize_conversation(tokenizer_for("gemma"), [])


@pytest.mark.parametrize(
    "name", ["qwen2_5", "llama3", "gemma3", "phi3", "qwen3", "gptoss", "llama3_1", "gemma4"]
)
def test_conversational_prompt_completion_matches_trl(name: str, tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for(name)
    prompt, completion = CHAT[1:4], CHAT[4:5]
    masked = tokenize_prompt_completion(tokenizer, prompt, completion)
    # TRL: the completion starts where the prompt with the generation prompt and the whole row part
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    ids = tokenizer.apply_chat_template(prompt + completion, return_dict=True)["input_ids"]
    start = next(
        (k for k, (a, b) in enumerate(zip(prompt_ids, ids, strict=False)) if a != b), len(prompt_ids)
    )
    assert masked.input_ids == ids
    assert masked.labels == [IGNORE_INDEX] * start + ids[start:]
    assert masked.end_of_turn_trained


def test_conversational_completion_trains_its_assistant_turns_only(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("qwen2_5")
    call = [{"type": "function", "function": {"name": "now", "arguments": {}}}]
    completion = [
        {"role": "assistant", "content": "", "tool_calls": call},
        {"role": "tool", "name": "now", "content": "12:00"},
        {"role": "assistant", "content": "It is noon."},
    ]
    masked = tokenize_prompt_completion(tokenizer, [{"role": "user", "content": "Time?"}], completion)
    assert pieces(tokenizer, masked) == [
        '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call><|im_end|>\n',
        "It is noon.<|im_end|>\n",
    ]
    with pytest.raises(RowError, match="no assistant message"):
        tokenize_prompt_completion(tokenizer, CHAT[1:2], [{"role": "user", "content": "x"}])
    with pytest.raises(RowError, match="both be strings or both be lists"):
        tokenize_prompt_completion(tokenizer, "Hi", completion)


@pytest.mark.parametrize("name", ["qwen2_5", "llama3"])
def test_string_prompt_completion_appends_eos_like_trl(name: str, tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for(name)
    eos = tokenizer.eos_token
    masked = tokenize_prompt_completion(tokenizer, "The sky is", " blue.")
    assert masked.input_ids == tokenizer("The sky is blue." + eos)["input_ids"]
    start = len(tokenizer("The sky is")["input_ids"])
    assert masked.labels == [IGNORE_INDEX] * start + masked.input_ids[start:]
    assert tokenizer.decode(masked.trained_ids()) == " blue." + eos
    assert masked.spans == (TokenSpan(start, len(masked.input_ids), -1),) and masked.end_of_turn_trained
    assert tokenize_prompt_completion(tokenizer, "The sky is", " blue." + eos) == masked  # not twice


def test_text_trains_every_token_and_appends_eos(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("llama3")
    masked = tokenize_text(tokenizer, "The sky is blue.")
    assert masked.input_ids == tokenizer("The sky is blue.<|eot_id|>")["input_ids"]
    assert masked.labels == masked.input_ids and masked.end_of_turn_trained
    assert tokenize_text(tokenizer, "The sky is blue.<|eot_id|>") == masked
    assert masked.spans == (TokenSpan(0, len(masked.input_ids), -1),)


def test_content_as_a_list_of_text_parts(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("gemma3")
    messages = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in CHAT[1:5]]
    masked = tokenize_conversation(tokenizer, messages)
    assert pieces(tokenizer, masked) == ["The sky is blue.<end_of_turn>\n", "Grass is green.<end_of_turn>\n"]


def test_chat_template_argument_overrides_the_tokenizer_template(tokenizer_for: TokenizerFor) -> None:
    tokenizer = tokenizer_for("qwen2_5")
    template = bundled_chat_template("qwen3_instruct_2507")
    masked = tokenize_conversation(tokenizer, CHAT, chat_template=template)
    assert masked.text == tokenizer.apply_chat_template(CHAT, chat_template=template, tokenize=False)
    assert pieces(tokenizer, masked)[-1] == "Snow is white.<|im_end|>\n"
    # Phi-3's '<|end|>' is plain text to this tokenizer: no token the model could stop on
    with pytest.raises(DatasetError, match="no end-of-turn token inside assistant message 2"):
        tokenize_conversation(tokenizer, CHAT, chat_template=bundled_chat_template("phi3"))
