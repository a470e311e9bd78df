"""The kit's masks on every bundled text template, against TRL's ``{% generation %}`` twins.

For each original template with a ``*_training.jinja`` twin (or generation markers of its own), the kit's
labels on the ORIGINAL template are compared token for token with TRL's ``assistant_masks`` on the twin,
on conversations where both render the same ids. Where they differ, the difference is one of a few kinds
listed per template below, each checked precisely; anything else fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from trl_sft_kit.data.masks import IGNORE_INDEX, MaskedTokens, text_only_templates, tokenize_conversation
from trl_sft_kit.errors import DatasetError
from trl_sft_kit.testing import bundled_chat_template, bundled_chat_template_names

GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALL = [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]

CONVERSATIONS: dict[str, list[dict[str, Any]]] = {
    "single_turn": [
        {"role": "user", "content": "What colour is snow?"},
        {"role": "assistant", "content": "Snow is white."},
    ],
    "plain": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What colour is the sky?"},
        {"role": "assistant", "content": "The sky is blue."},
        {"role": "user", "content": "And grass?"},
        {"role": "assistant", "content": "Grass is green."},
    ],
    "repeated_whitespace_ends_with_user": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say yes."},
        {"role": "assistant", "content": "  Yes.\n\n- one\n- two  "},
        {"role": "user", "content": "Again."},
        {"role": "assistant", "content": "  Yes.\n\n- one\n- two  "},
        {"role": "user", "content": "Once more."},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Thanks."},
    ],
    "tool_call": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": CALL},
        {"role": "tool", "name": "get_weather", "content": "Sunny, 21 C"},
        {"role": "assistant", "content": "It is sunny in Paris."},
    ],
    "tool_call_with_text": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": CALL},
        {"role": "tool", "name": "get_weather", "content": "Sunny, 21 C"},
        {"role": "assistant", "content": "It is sunny in Paris."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You are welcome."},
    ],
    "reasoning_content": [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "Yes, 7 is prime.", "reasoning_content": "7 has no divisors."},
        {"role": "user", "content": "Is 9 prime?"},
        {"role": "assistant", "content": "No, 9 is not prime.", "reasoning_content": "9 = 3 * 3."},
    ],
    "think_in_content": [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "<think>\n7 has no divisors.\n</think>\n\nYes, 7 is prime."},
        {"role": "user", "content": "Is 9 prime?"},
        {"role": "assistant", "content": "<think>\n9 = 3 * 3.\n</think>\n\nNo, 9 is not prime."},
    ],
}

#: Twins that render some of these conversations differently from their original, on purpose.
RENDERS_DIFFERENTLY = {
    "deepseek_r1_distill": "keeps the reasoning the original cuts off at '</think>'",
    "glm4moe": "moves the next message's '<|user|>' into the assistant turn, and adds one after the last",
    "qwen3": "always renders the <think> block, which the original drops before the last user message",
    "qwen3_5_nothink": "always renders the <think> block (same patch as qwen3)",
    "qwen3_5_think": "always renders the <think> block (same patch as qwen3)",
    "qwen3_6": "always renders the <think> block (same patch as qwen3)",
}

#: Where the kit's masks differ from TRL's, by template, and the kind of each difference:
#: - "prompt": TRL also trains text the model is given at inference and never generates: (part of) what
#:   add_generation_prompt writes (the role header, a prefilled "<think>\n"), or what the previous
#:   message's block writes before the turn (DeepSeek's tool-outputs-end token).
#: - "tool_stop": the kit also trains Gemma 4's '<|tool_response>' after a tool call, the token the model
#:   stops on to get a tool result (in the model's generation_config eos ids); TRL's twin leaves it out.
#: - "next_opener": TRL trains the NEXT message's opener as the stop token (GLM-4); the kit refuses
#:   such a template unless require_end_of_turn=False.
DIFFERENCES = {
    "deepseek_r1_distill": {"prompt"},  # the Assistant token, the tool-outputs-end token
    "deepseekv3": {"prompt"},  # the Assistant token
    "diffusion_gemma": {"tool_stop"},
    "glm4moe": {"next_opener"},
    "gptoss": {"prompt"},  # '<|start|>assistant'
    "muse_glimmer": {"prompt"},  # '<|start|>assistant'
    "nemotron_3_5_lightning": {"prompt"},  # '<think>' of '<|im_start|>assistant\n<think>\n'
    "nemotron_3_nano": {"prompt"},
    "nemotron_3_super": {"prompt"},
    "nemotron_3_ultra": {"prompt"},
    "qwen2_5": {"prompt"},  # the '\n' of '<|im_start|>assistant\n'
    "qwen3_5_nothink": {"prompt"},  # '<think>\n\n</think>\n\n' prefilled by the generation prompt
    "qwen3_5_think": {"prompt"},  # '<think>'
    "qwen3_6": {"prompt"},
    "qwen3_8": {"prompt"},
}

#: Text templates TRL ships without a training twin nor generation markers.
WITHOUT_TWIN = ("gemma4", "gemma4_v2", "gemma4_v3", "gemma4_v4", "gemma4_v5", "llama3_1", "llama3_2")


def twin_of(name: str) -> str | None:
    """TRL's template with generation markers for ``name``: its twin, or itself when it has markers."""
    if f"{name}_training" in bundled_chat_template_names():
        return bundled_chat_template(f"{name}_training")
    text = bundled_chat_template(name)
    return text if GENERATION_MARKER.search(text) else None


TWINNED = [name for name in text_only_templates() if twin_of(name) is not None]


def renderable(tokenizer: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The conversation, without its system message when the template refuses one; None if it can't."""
    for candidate in (messages, [m for m in messages if m["role"] != "system"]):
        try:
            tokenizer.apply_chat_template(candidate, tools=TOOLS, tokenize=False)
        except Exception:
            continue
        return candidate
    return None


def cases(tokenizer: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for label, messages in CONVERSATIONS.items():
        usable = renderable(tokenizer, messages)
        if usable is not None:
            yield label, usable


def runs(indices: Sequence[int]) -> list[list[int]]:
    grouped: list[list[int]] = []
    for index in indices:
        if grouped and grouped[-1][-1] == index - 1:
            grouped[-1].append(index)
        else:
            grouped.append([index])
    return grouped


def inference_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The end of what the model is given before it writes the next turn: the messages so far rendered
    with ``add_generation_prompt=True``."""
    context = messages or [{"role": "user", "content": "Hi"}]
    rendered = tokenizer.apply_chat_template(context, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    return rendered[-64:]


def classify(
    tokenizer: Any, messages: list[dict[str, Any]], masked: MaskedTokens, trl_mask: list[int]
) -> set[str]:
    """The kinds of difference between the kit's labels and TRL's mask; raises on an unexplained one."""
    kit = {k for k, label in enumerate(masked.labels) if label != IGNORE_INDEX}
    trl = {k for k, bit in enumerate(trl_mask) if bit}
    turn_of = {k: span.message_index for span in masked.spans for k in range(span.start, span.end)}
    kinds: set[str] = set()
    for run in runs(sorted(trl - kit)):
        text = tokenizer.decode([masked.input_ids[k] for k in run])
        if run[-1] + 1 in kit:  # right before a trained turn: must be what the model is given
            prompt = inference_prompt(tokenizer, messages[: turn_of[run[-1] + 1]])
            assert text in prompt, f"TRL trains {text!r}, which the prompt {prompt!r} does not end with"
            kinds.add("prompt")
        elif run[0] - 1 in kit and text in ("<|user|>", "<|observation|>", "<|system|>"):
            kinds.add("next_opener")
        else:
            raise AssertionError(f"TRL trains {text!r} and the kit does not, in {masked.text!r}")
    for run in runs(sorted(kit - trl)):
        text = tokenizer.decode([masked.input_ids[k] for k in run])
        assert text == "<|tool_response>", f"the kit trains {text!r} and TRL does not, in {masked.text!r}"
        kinds.add("tool_stop")
    return kinds


def test_text_only_templates_are_the_bundled_text_templates() -> None:
    names = text_only_templates()
    bundled = bundled_chat_template_names()
    assert names == tuple(sorted(names)) and len(names) >= 30
    assert all(name in bundled and not name.endswith("_training") for name in names)
    for vision in ("smolvlm", "idefics3", "qwen2_5_vl", "qwen3_vl", "llava_next", "lfm2_2_5_vl"):
        assert vision in bundled and vision not in names
    assert {"qwen2_5", "llama3", "llama3_1", "phi3", "gemma", "gemma4", "gptoss"} <= set(names)
    assert tuple(name for name in names if twin_of(name) is None) == WITHOUT_TWIN


def test_twins_that_render_differently_are_listed(tokenizer_for: Callable[[str], Any]) -> None:
    found = set()
    for name in TWINNED:
        tokenizer, twin = tokenizer_for(name), twin_of(name)
        for _, messages in cases(tokenizer):
            ids = tokenizer.apply_chat_template(messages, tools=TOOLS, return_dict=True)["input_ids"]
            twin_ids = tokenizer.apply_chat_template(
                messages, tools=TOOLS, chat_template=twin, return_dict=True
            )["input_ids"]
            if ids != twin_ids:
                found.add(name)
    assert found == set(RENDERS_DIFFERENTLY)


@pytest.mark.parametrize("name", TWINNED)
def test_masks_match_trl_twin(name: str, tokenizer_for: Callable[[str], Any]) -> None:
    tokenizer, twin = tokenizer_for(name), twin_of(name)
    kinds: set[str] = set()
    compared = 0
    for label, messages in cases(tokenizer):
        masked = tokenize_conversation(tokenizer, messages, tools=TOOLS, require_end_of_turn=False)
        reference = tokenizer.apply_chat_template(messages, tools=TOOLS, return_dict=True)["input_ids"]
        assert masked.input_ids == reference, label  # what apply_chat_template(tokenize=True) gives
        trl = tokenizer.apply_chat_template(
            messages, tools=TOOLS, chat_template=twin, return_dict=True, return_assistant_tokens_mask=True
        )
        if trl["input_ids"] != masked.input_ids:
            assert name in RENDERS_DIFFERENTLY, label
            continue
        compared += 1
        kinds |= classify(tokenizer, messages, masked, trl["assistant_masks"])
    assert compared >= 1
    assert kinds == DIFFERENCES.get(name, set())


@pytest.mark.parametrize("name", WITHOUT_TWIN)
def test_templates_without_twin_train_contents_and_end_of_turn(
    name: str, tokenizer_for: Callable[[str], Any]
) -> None:
    tokenizer = tokenizer_for(name)
    controls = "|".join(map(re.escape, sorted(tokenizer.get_added_vocab(), key=len, reverse=True)))
    end_of_turn = re.compile(rf"(?:\s|{controls})*")
    for label in ("plain", "repeated_whitespace_ends_with_user"):
        messages = CONVERSATIONS[label]
        masked = tokenize_conversation(tokenizer, messages)
        assert masked.input_ids == tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"]
        replies = [(i, m["content"]) for i, m in enumerate(messages) if m["role"] == "assistant"]
        assert [span.message_index for span in masked.spans] == [i for i, _ in replies]
        for span, (_, content) in zip(masked.spans, replies, strict=True):
            text = tokenizer.decode(masked.input_ids[span.start : span.end])
            body = content if text.startswith(content) else content.strip()
            assert text.startswith(body), (label, text)
            suffix = text[len(body) :]
            assert end_of_turn.fullmatch(suffix) and suffix.strip(), (label, text)
        assert masked.num_trained == sum(span.end - span.start for span in masked.spans)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "gemma4",
            [
                '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>',
                "It is sunny in Paris.<turn|>\n",
            ],
        ),
        (
            "gemma4_v2",
            [
                '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><turn|>\n',
                "It is sunny in Paris.<turn|>\n",
            ],
        ),
        (
            "llama3_1",
            [
                '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
                "It is sunny in Paris.<|eot_id|>",
            ],
        ),
    ],
)
def test_tool_calls_without_twin(name: str, expected: list[str], tokenizer_for: Callable[[str], Any]) -> None:
    tokenizer = tokenizer_for(name)
    masked = tokenize_conversation(tokenizer, CONVERSATIONS["tool_call"], tools=TOOLS)
    assert [tokenizer.decode(masked.input_ids[s.start : s.end]) for s in masked.spans] == expected
    assert "Sunny, 21 C" not in tokenizer.decode(masked.trained_ids())  # the tool result is not trained


def test_gemma4_tool_response_between_call_and_text_is_not_trained(
    tokenizer_for: Callable[[str], Any],
) -> None:
    tokenizer = tokenizer_for("gemma4")  # renders the tool response inside the model turn, before the text
    masked = tokenize_conversation(tokenizer, CONVERSATIONS["tool_call_with_text"], tools=TOOLS)
    assert "<|tool_response>response:get_weather" in masked.text
    pieces = [(s.message_index, tokenizer.decode(masked.input_ids[s.start : s.end])) for s in masked.spans]
    assert pieces == [
        (1, '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>'),
        (1, "Let me check.<turn|>\n"),
        (3, "It is sunny in Paris.<turn|>\n"),
        (5, "You are welcome.<turn|>\n"),
    ]


def test_glm4moe_is_refused_because_the_next_message_ends_the_turn(
    tokenizer_for: Callable[[str], Any],
) -> None:
    tokenizer = tokenizer_for("glm4moe")
    with pytest.raises(DatasetError, match="end-of-turn"):
        tokenize_conversation(tokenizer, CONVERSATIONS["plain"])
    masked = tokenize_conversation(tokenizer, CONVERSATIONS["plain"], require_end_of_turn=False)
    assert not masked.end_of_turn_trained
