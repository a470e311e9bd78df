"""A conversation rendered by its chat template: as it is, and with sentinels for what the assistant writes.

``_Chat`` holds a row and the settings it renders with, renders it (once per distinct request) through
transformers' ``render_jinja_template`` or ``apply_chat_template``, and makes the copy whose assistant
contents, reasoning and tool-call arguments are unique sentinels, so each turn can be found exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import attrs

from trl_sft_kit.data.masks.controls import _Controls
from trl_sft_kit.errors import BackendError, RowError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: Keys of a message that only steer the loss; removed before rendering.
LOSS_KEYS = ("train", "weight")

_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")

#: Template renderings made in this process (the memo's tests and benchmark read it).
COUNTS = {"renderings": 0}


def _is_trained(message: Mapping[str, Any]) -> bool:
    return message.get("train") is not False and message.get("weight") != 0


def _clean(message: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key not in LOSS_KEYS}


@attrs.frozen
class _Chat:
    """A conversation and the settings it is rendered with."""

    tokenizer: Any
    messages: tuple[dict[str, Any], ...]
    tools: Any
    chat_template: str | None
    template_kwargs: Mapping[str, Any]
    controls: _Controls
    #: The sentinels standing in for what each assistant message writes, by message index.
    marks: Mapping[int, list[str]] = attrs.field(factory=dict)
    #: The messages with the sentinels in place.
    sentinel_messages: tuple[dict[str, Any], ...] = ()
    #: The text each content or reasoning sentinel stands for.
    originals: Mapping[str, str] = attrs.field(factory=dict)
    #: Renderings of this row already made, by messages and generation prompt: the algorithm asks for
    #: some twice (a conversation that ends with its only assistant message renders it alone and with
    #: the sentinels in the same form). Shared by the copies ``with_sentinels`` makes.
    renderings: dict[tuple[str, bool], str] = attrs.field(factory=dict, eq=False, repr=False)
    #: The template ``apply_chat_template`` would use and the variables it passes (special tokens and
    #: ``template_kwargs``), resolved once per row; None to render through ``apply_chat_template``.
    resolved: tuple[str, Mapping[str, Any]] | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def create(
        cls,
        tokenizer: PreTrainedTokenizerBase,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | str | None,
        chat_template: str | None,
        template_kwargs: Mapping[str, Any] | None,
    ) -> _Chat:
        if not getattr(tokenizer, "is_fast", False):
            raise BackendError(
                f"Loss masks need the character offsets of a fast tokenizer, but {type(tokenizer).__name__} "
                "is not one. Load the tokenizer with `AutoTokenizer.from_pretrained(..., use_fast=True)`."
            )
        if not messages:
            raise RowError("The conversation has no messages.", field="messages")
        if isinstance(tools, str):
            tools = json.loads(tools)
        resolved = None
        if _render_jinja() is not None:
            try:
                template = tokenizer.get_chat_template(chat_template, tools)  # type: ignore[arg-type]
            except Exception:  # no template: apply_chat_template raises it again, row by row
                template = None
            if isinstance(template, str):
                resolved = (template, {**tokenizer.special_tokens_map, **(template_kwargs or {})})
        return cls(
            tokenizer,
            tuple(_clean(m) for m in messages),
            tools,
            chat_template,
            template_kwargs or {},
            _Controls(tokenizer),
            resolved=resolved,
        )

    def with_sentinels(self, rendered: str, force_content: frozenset[int] = frozenset()) -> _Chat:
        """Sentinels that ``rendered`` does not contain, for every assistant message.

        An empty content keeps its place unless ``force_content`` names the message: templates render
        an empty reply differently from a sentinel (Gemma 4 moves the text of a tool call after the tool
        response), so the tool-call arguments anchor such a turn, and the content only when they are not
        rendered.
        """
        for salt in range(100):
            stand_ins = {
                i: _stand_in(m, i, salt, force_content=i in force_content)
                for i, m in enumerate(self.messages)
                if m.get("role") == "assistant"
            }
            marks = {i: list(stand_in[1]) for i, stand_in in stand_ins.items()}
            if not any(mark in rendered for group in marks.values() for mark in group):
                messages = tuple(
                    stand_ins[i][0] if i in stand_ins else m for i, m in enumerate(self.messages)
                )
                originals = {k: v for _, group in stand_ins.values() for k, v in group.items() if v}
                return attrs.evolve(self, marks=marks, sentinel_messages=messages, originals=originals)
        raise RowError("The conversation contains the kit's sentinel strings.", field="messages")

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = False) -> str:
        key = (json.dumps(list(messages), sort_keys=True, default=repr), add_generation_prompt)
        known = self.renderings.get(key)
        if known is not None:
            return known
        render_jinja = _render_jinja()
        COUNTS["renderings"] += 1
        if self.resolved is not None and render_jinja is not None and all(type(m) is dict for m in messages):
            # What apply_chat_template(tokenize=False) does for plain dict messages, without converting
            # them again on every call: drop the keys whose value is None, render the resolved template.
            template, variables = self.resolved
            plain = [{k: v for k, v in m.items() if v is not None} for m in messages]
            rendered, _ = render_jinja(
                conversations=[plain],
                tools=self.tools,
                chat_template=template,
                add_generation_prompt=add_generation_prompt,
                **variables,
            )
            text = rendered[0]
        else:
            text = self.tokenizer.apply_chat_template(
                list(messages),
                tools=self.tools,
                chat_template=self.chat_template,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                **self.template_kwargs,
            )
        if not isinstance(text, str):  # pragma: no cover - a processor returning a batch
            raise BackendError(f"apply_chat_template returned {type(text).__name__}, expected str.")
        self.renderings[key] = text
        return text

    def try_render(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = False
    ) -> str | None:
        """Render, or ``None`` when the template refuses these messages (a probe, not the row itself)."""
        if not messages:
            return None
        try:
            return self.render(messages, add_generation_prompt=add_generation_prompt)
        except Exception:  # templates raise anything: TemplateError, TypeError, KeyError, ...
            return None


@lru_cache(maxsize=1)
def _render_jinja() -> Callable[..., Any] | None:
    """transformers' ``render_jinja_template`` (what ``apply_chat_template`` renders with), if it has one."""
    try:
        from transformers.utils.chat_template_utils import render_jinja_template
    except ImportError:  # pragma: no cover - another transformers layout: apply_chat_template it is
        return None
    return cast("Callable[..., Any]", render_jinja_template)


def _has_text(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    if isinstance(content, list):
        return any(isinstance(part, Mapping) and str(part.get("text") or "").strip() for part in content)
    return False


def _stand_in(
    message: Mapping[str, Any], index: int, salt: int, *, force_content: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """``message`` with what the assistant writes (content, reasoning, tool-call arguments) replaced by
    unique sentinels, and the sentinels with the text they stand for (empty for arguments)."""
    new, marks = dict(message), dict[str, str]()

    def mark(original: str = "") -> str:
        sentinel = f"KitSpan{index}N{len(marks)}Q{salt}Z"
        marks[sentinel] = original
        return sentinel

    for key in _REASONING_KEYS:
        if isinstance(new.get(key), str) and new[key].strip():
            new[key] = mark(new[key])
    calls = new.get("tool_calls")
    if isinstance(calls, list):
        new["tool_calls"] = [_call_stand_in(call, mark) for call in calls]
    content = new.get("content")
    if _has_text(content) or not marks or force_content:  # an empty reply still needs an anchor
        if isinstance(content, list) and not force_content:
            text = "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
            new["content"] = [{"type": "text", "text": mark(text)}]
        else:
            new["content"] = mark(content if isinstance(content, str) else "")
    return new, marks


def _call_stand_in(call: Any, mark: Callable[[], str]) -> Any:
    if not isinstance(call, Mapping):
        return call
    call = dict(call)
    holder = dict(call["function"]) if isinstance(call.get("function"), Mapping) else call
    if "arguments" in holder:
        arguments = {"kit": mark()}
        holder["arguments"] = json.dumps(arguments) if isinstance(holder["arguments"], str) else arguments
    if holder is not call:
        call["function"] = holder
    return call
