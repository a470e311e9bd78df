"""Loss masks for any chat template, without ``{% generation %}`` markers.

TRL's ``assistant_only_loss`` needs a chat template with ``{% generation %}`` markers and only patches the
templates it knows. This module finds the assistant turns of ANY chat template by rendering it:

1. The conversation is rendered once and tokenized with character offsets, exactly as
   ``apply_chat_template(tokenize=True)`` tokenizes it. The spans are found in this one rendering, never in
   a separately rendered prefix (Qwen3 drops earlier reasoning, Llama 3.2 writes today's date, ...).
2. It is rendered again with everything an assistant message writes (content, reasoning, tool-call
   arguments) replaced by unique sentinels. There each turn is exact: it starts after its header (what
   ``add_generation_prompt=True`` writes after the messages before it, as far as the turn starts with it)
   and ends after what the template writes after the sentinel whatever follows: as the last message,
   before the next message, before another kind of message. That is the end-of-turn token and its
   separator (``<|im_end|>\n``), or a tool-call stop token (gpt-oss ``<|call|>``, Gemma 4
   ``<|tool_response>``). A message rendered inside a turn (Gemma 4's tool response) is cut out.
3. The text between two turns (other messages, headers) does not depend on the assistant contents, so it
   is the same in both renderings: the turns of the real rendering are what lies between. Whatever the
   template does to a reply (strips it, drops its reasoning, adds ``<think></think>``), its span is what
   the rendering holds.
4. A token is trained when it overlaps a span (the rule transformers uses for ``assistant_masks``).

Every trained turn must end on a control token, or the model never learns to stop; a template that
writes that token in the NEXT message's block (GLM-4) is refused with a
``DatasetError`` unless ``require_end_of_turn=False``.

Example:
    >>> from trl_sft_kit.testing import tiny_tokenizer
    >>> tokenizer = tiny_tokenizer("qwen2_5")
    >>> masked = tokenize_conversation(
    ...     tokenizer,
    ...     [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    ... )
    >>> tokenizer.decode(masked.trained_ids())
    'Hello!<|im_end|>\\n'
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import attrs

from trl_sft_kit.data.loss_roles import content_spans, message_roles
from trl_sft_kit.errors import BackendError, DatasetError, RowError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "IGNORE_INDEX",
    "MaskedTokens",
    "TokenSpan",
    "end_of_turn_trained",
    "text_only_templates",
    "tokenize_conversation",
    "tokenize_prompt_completion",
    "tokenize_text",
]

#: Label of a token that is left out of the loss (PyTorch's ``CrossEntropyLoss`` default).
IGNORE_INDEX = -100

#: Keys of a message that only steer the loss; removed before rendering.
LOSS_KEYS = ("train", "weight")

#: Chat templates bundled with TRL that need images (left out of ``text_only_templates``).
VISION_TEMPLATES = frozenset(
    {"idefics3", "lfm2_2_5_vl", "llava_next", "qwen2_5_vl", "qwen3_vl", "smolvlm"},
)
_VISION_NAME = re.compile(r"(?:^|_)vl(?:$|_)|vlm|idefics|llava")

Turns = Literal["all", "last"]


class TokenSpan(NamedTuple):
    """Tokens ``[start, end)`` of ``input_ids`` that are trained, and the message they come from.

    ``message_index`` is the index in the conversation (prompt and completion counted together), or ``-1``
    for plain text and string prompt/completion rows.
    """

    start: int
    end: int
    message_index: int


@attrs.frozen
class MaskedTokens:
    """Token ids of one row and their labels, ``-100`` wherever the loss must not look.

    Attributes:
        input_ids: The token ids, as ``apply_chat_template(tokenize=True)`` (or the tokenizer) gives them.
        labels: ``input_ids`` where trained, ``IGNORE_INDEX`` elsewhere.
        spans: The trained spans, in order.
        end_of_turn_trained: Whether every trained turn ends on an end-of-turn token (a control token).
        text: The text that was tokenized.
    """

    input_ids: list[int]
    labels: list[int]
    spans: tuple[TokenSpan, ...] = ()
    end_of_turn_trained: bool = True
    text: str = ""

    @property
    def num_trained(self) -> int:
        """Number of tokens the loss looks at."""
        return sum(label != IGNORE_INDEX for label in self.labels)

    def trained_ids(self) -> list[int]:
        """The trained token ids, in order (spans joined)."""
        return [label for label in self.labels if label != IGNORE_INDEX]


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def tokenize_conversation(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | str | None = None,
    turns: Turns = "all",
    roles: Sequence[str] = ("assistant",),
    chat_template: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
    require_end_of_turn: bool = True,
) -> MaskedTokens:
    """Tokenize a conversation and label its assistant turns only (or the roles chosen), on any template.

    An assistant turn is trained from the end of its header (what ``add_generation_prompt=True`` writes)
    through its end-of-turn token and the separator the template writes before the next message: its
    content, reasoning and tool calls as the template renders them in this conversation.

    Args:
        tokenizer: A fast tokenizer (character offsets are needed) with a chat template, or pass
            ``chat_template``.
        messages: ``{"role", "content", ...}`` dicts (``reasoning_content`` and ``tool_calls`` too). A
            message with ``"train": False`` or ``"weight": 0`` is rendered but not trained (any other
            weight trains it: labels are all or nothing); both keys are removed before rendering.
        tools: Tool schemas passed to the template (a JSON string is decoded).
        turns: ``"all"`` trains every assistant turn, ``"last"`` only the last one.
        roles: The messages trained: ``"assistant"`` (every assistant turn), ``"tool_call"`` (the
            assistant turns that call a tool), ``"system"``, ``"user"``, ``"tool"`` (their content as the
            template writes it, without headers or end of turn).
        chat_template: A Jinja template to use instead of the tokenizer's (passed to
            ``apply_chat_template``).
        template_kwargs: Extra template variables (``enable_thinking``, ``date_string``, ...).
        require_end_of_turn: Raise when a trained turn does not end on an end-of-turn token; when ``False``
            the result says so in ``end_of_turn_trained`` instead.

    Returns:
        The ``MaskedTokens`` of the conversation.

    Raises:
        RowError: If the template cannot render the conversation, or a turn cannot be found in it.
        DatasetError: If a trained turn has no end-of-turn token the model could learn to stop on.
        BackendError: If the tokenizer is not a fast tokenizer.

    Example:
        >>> from trl_sft_kit.testing import tiny_tokenizer
        >>> tokenizer = tiny_tokenizer("llama3")
        >>> masked = tokenize_conversation(tokenizer, [
        ...     {"role": "user", "content": "What colour is the sky?"},
        ...     {"role": "assistant", "content": "Blue.", "train": False},
        ...     {"role": "user", "content": "And grass?"},
        ...     {"role": "assistant", "content": "Green."},
        ... ])
        >>> tokenizer.decode(masked.trained_ids())
        'Green.<|eot_id|>'
    """
    if turns not in ("all", "last"):
        raise ValueError(f"'turns' must be 'all' or 'last' (got {turns!r}).")
    chat, chosen = _conversation_chat(
        tokenizer, messages, tools, turns, chat_template, template_kwargs, roles
    )
    return _tokenize_chat(chat, chosen, require_end_of_turn)


def _conversation_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | str | None,
    turns: Turns,
    chat_template: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
    roles: Sequence[str] = ("assistant",),
) -> tuple[_Chat, set[int]]:
    """The conversation ready to render, and the messages to train (assistant turns, or ``roles``)."""
    assistants = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    chosen = [i for i, m in enumerate(messages) if _is_trained(m) and message_roles(m) & set(roles)]
    if turns == "last":
        chosen = [i for i in chosen if i not in assistants or i == assistants[-1]]
    return _Chat.create(tokenizer, messages, tools, chat_template, template_kwargs), set(chosen)


def tokenize_prompt_completion(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str | Sequence[Mapping[str, Any]],
    completion: str | Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | str | None = None,
    chat_template: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
    require_end_of_turn: bool = True,
) -> MaskedTokens:
    """Tokenize a prompt/completion row and label the completion only.

    Strings: like TRL, the eos token is appended to the completion unless it already ends with it, and
    the completion starts at the first token where ``prompt`` and ``prompt + completion`` tokenize
    differently. Message lists: the conversation ``prompt + completion`` is rendered once and the
    assistant turns of the completion are trained as in ``tokenize_conversation`` (from the end of
    the generation prompt through the end-of-turn token); tool messages inside the completion are not.

    Args:
        tokenizer: A fast tokenizer.
        prompt: A string, or the prompt messages.
        completion: A string, or the completion messages (same kind as ``prompt``).
        tools: Tool schemas passed to the template (conversational rows).
        chat_template: A Jinja template to use instead of the tokenizer's.
        template_kwargs: Extra template variables.
        require_end_of_turn: See ``tokenize_conversation``.

    Returns:
        The ``MaskedTokens`` of the row.

    Raises:
        RowError: If ``prompt`` and ``completion`` are not both strings or both message lists, or the
            completion has no assistant message.
        DatasetError: See ``tokenize_conversation``.

    Example:
        >>> from trl_sft_kit.testing import tiny_tokenizer
        >>> tokenizer = tiny_tokenizer("qwen2_5")
        >>> masked = tokenize_prompt_completion(tokenizer, "The sky is", " blue.")
        >>> tokenizer.decode(masked.trained_ids())
        ' blue.<|im_end|>'
    """
    if isinstance(prompt, str) and isinstance(completion, str):
        return _tokenize_strings(tokenizer, prompt, completion)
    chat, chosen = _prompt_completion_chat(
        tokenizer, prompt, completion, tools, chat_template, template_kwargs
    )
    return _tokenize_chat(chat, chosen, require_end_of_turn)


def _prompt_completion_chat(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str | Sequence[Mapping[str, Any]],
    completion: str | Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | str | None,
    chat_template: str | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> tuple[_Chat, set[int]]:
    """A conversational prompt/completion row ready to render, and the completion's turns to train."""
    if isinstance(prompt, str) or isinstance(completion, str):
        raise RowError(
            "'prompt' and 'completion' must both be strings or both be lists of messages.",
            field="completion",
        )
    messages = [*prompt, *completion]
    chosen = {
        i
        for i in range(len(prompt), len(messages))
        if messages[i].get("role") == "assistant" and _is_trained(messages[i])
    }
    if not any(m.get("role") == "assistant" for m in completion):
        raise RowError("The completion has no assistant message to train on.", field="completion")
    return _Chat.create(tokenizer, messages, tools, chat_template, template_kwargs), chosen


def _tokenize_strings(tokenizer: PreTrainedTokenizerBase, prompt: str, completion: str) -> MaskedTokens:
    eos = tokenizer.eos_token
    if eos and not completion.endswith(eos):
        completion = completion + eos
    ids = list(tokenizer(prompt + completion)["input_ids"])
    start = _common_prefix_length(list(tokenizer(prompt)["input_ids"]), ids)
    return _plain(tokenizer, ids, start, prompt + completion)


def tokenize_text(tokenizer: PreTrainedTokenizerBase, text: str) -> MaskedTokens:
    """Tokenize a plain-text row and label every token; the eos token is appended as TRL does.

    Args:
        tokenizer: A tokenizer.
        text: The text.

    Returns:
        The ``MaskedTokens`` of the row, with ``labels == input_ids``.

    Example:
        >>> from trl_sft_kit.testing import tiny_tokenizer
        >>> tokenizer = tiny_tokenizer("llama3")
        >>> masked = tokenize_text(tokenizer, "The sky is blue.")
        >>> masked.labels == masked.input_ids, tokenizer.decode(masked.input_ids[-1:])
        (True, '<|eot_id|>')
    """
    eos = tokenizer.eos_token
    if eos and not text.endswith(eos):
        text = text + eos
    return _plain(tokenizer, list(tokenizer(text)["input_ids"]), 0, text)


def end_of_turn_trained(tokenizer: PreTrainedTokenizerBase, masked: MaskedTokens) -> bool:
    """Whether every trained turn of ``masked`` ends on an end-of-turn token.

    Like TRL's ``is_chat_template_stop_token_trained``: ignoring trailing whitespace tokens, the last
    trained token of each turn must be a control token (a special or added token), not content. When it
    is not, the model is never trained to stop.

    Args:
        tokenizer: The tokenizer that made ``masked``.
        masked: A result of one of the ``tokenize_*`` functions.

    Returns:
        ``True`` when every trained turn ends on a control token (also when nothing is trained).
    """
    return not _turns_without_end(tokenizer, masked.input_ids, masked.spans)


def text_only_templates() -> tuple[str, ...]:
    """Names of the chat templates bundled with TRL that work on text alone.

    The stems of ``trl/chat_templates/*.jinja`` minus the ``*_training`` twins and the vision templates
    (``VISION_TEMPLATES``, and any name that looks like one: ``*_vl*``, ``*vlm*``, ``idefics*``,
    ``llava*``).

    Returns:
        Sorted template names, e.g. ``("cohere", "cohere2", ..., "qwen3_8", "qwen3_instruct_2507")``.
    """
    from trl_sft_kit.testing import bundled_chat_template_names

    return tuple(
        name
        for name in bundled_chat_template_names()
        if not name.endswith("_training") and name not in VISION_TEMPLATES and not _VISION_NAME.search(name)
    )


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Control tokens
# --------------------------------------------------------------------------------------


class _Controls:
    """The tokenizer's control tokens (special and added tokens) as a pattern over text."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.pattern, self.or_space = _control_patterns(_control_strings(tokenizer))

    def snap(self, text: str, cut: int) -> int:
        """Move ``cut`` back to the start of the control token it falls inside, if any."""
        if cut <= 0 or cut >= len(text):
            return cut
        for match in self.pattern.finditer(text, max(0, cut - 64), min(len(text), cut + 64)):
            if match.start() < cut < match.end():
                return match.start()
        return cut

    def snap_forward(self, text: str, cut: int) -> int:
        """Move ``cut`` on to the end of the control token it falls inside, if any."""
        start = self.snap(text, cut)
        if start == cut:
            return cut
        match = self.pattern.match(text, start)
        return match.end() if match else cut

    def contains(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def first(self, text: str) -> str | None:
        match = self.pattern.search(text)
        return match.group() if match else None

    def leading(self, text: str) -> list[re.Match[str]]:
        """The control tokens of the run of control tokens and whitespace that ``text`` starts with."""
        found, pos = [], 0
        while (match := self.or_space.match(text, pos)) is not None and match.end() > pos:
            if not match.group().isspace():
                found.append(match)
            pos = match.end()
        return found


def _control_strings(tokenizer: PreTrainedTokenizerBase) -> tuple[str, ...]:
    tokens = set(tokenizer.get_added_vocab()) | set(tokenizer.all_special_tokens)
    return tuple(sorted((t for t in tokens if t.strip()), key=lambda t: (-len(t), t)))


@lru_cache(maxsize=16)
def _control_patterns(tokens: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    alternation = "|".join(map(re.escape, tokens)) or r"(?!x)x"
    return re.compile(alternation), re.compile(rf"(?:{alternation})|\s+")


def _turns_without_end(
    tokenizer: PreTrainedTokenizerBase, input_ids: Sequence[int], spans: Sequence[TokenSpan]
) -> list[int]:
    """The messages whose last trained span does not end on a control token (whitespace aside)."""
    control = frozenset(tokenizer.get_added_vocab().values()) | frozenset(tokenizer.all_special_ids)
    last = {span.message_index: span for span in spans}
    return [index for index, span in last.items() if not _ends_on(tokenizer, input_ids, span, control)]


def _ends_on(
    tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], span: TokenSpan, control: frozenset[int]
) -> bool:
    for index in range(span.end - 1, span.start - 1, -1):
        if str(tokenizer.decode([ids[index]])).strip():
            return ids[index] in control
    return False


# --------------------------------------------------------------------------------------
# Locating assistant turns
# --------------------------------------------------------------------------------------

_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


def _common_prefix_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the common prefix of two strings or lists (bisection over C-level slice compares)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low] and a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


def _common_suffix_length(a: str, b: str) -> int:
    return _common_prefix_length(a[::-1], b[::-1])


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


class _Piece(NamedTuple):
    """A trained stretch of the sentinel rendering, ``[start, end)``, of one assistant message.

    ``header`` is the length of the header that ends at ``start`` (0 for a piece that continues a turn)
    and ``tail`` the length of the template text that ends the piece after its last sentinel.
    """

    message_index: int
    start: int
    end: int
    header: int
    tail: int


def _header(chat: _Chat, index: int, sentinel_text: str, low: int, high: int) -> tuple[int, int]:
    """Start and end, in the sentinel text, of the header of the turn of message ``index``.

    The header is what ``add_generation_prompt=True`` writes after the messages before the turn, as far
    as the turn really starts with it (a generation prompt may prefill ``<think>\n`` where the turn has
    ``<think></think>``). It lies between ``low`` (the end of the previous turn) and ``high`` (the first
    sentinel of the turn). ``(high, high)`` when the template writes no generation prompt.
    """
    controls = chat.controls
    probe = ({"role": "user", "content": "Hi"},)
    for context in (chat.sentinel_messages[:index], probe):
        with_prompt = chat.try_render(context, add_generation_prompt=True)
        without = chat.try_render(context)
        if with_prompt is None or without is None:
            continue
        start = controls.snap(with_prompt, _common_prefix_length(without, with_prompt))
        if context is probe:
            return _header_before(sentinel_text, with_prompt[start:], low, high, controls)
        # The rendering up to the turn is the same with the prompt: the turn starts where they part.
        end = controls.snap(with_prompt, _common_prefix_length(with_prompt, sentinel_text))
        if max(start, low) < end <= high:
            return max(start, low), end
        return _header_before(sentinel_text, with_prompt[start:], low, high, controls)
    return high, high


def _header_before(text: str, header: str, low: int, high: int, controls: _Controls) -> tuple[int, int]:
    """Start and end of the last occurrence in ``text[low:high]`` of the longest prefix of ``header``.

    ``(high, high)`` when not even its first character is there.
    """
    if text.find(header, low, high) < 0:
        found, missing = 0, len(header)  # header[:found] is in the window, header[:missing] is not
        while missing - found > 1:
            middle = (found + missing) // 2
            if text.find(header[:middle], low, high) >= 0:
                found = middle
            else:
                missing = middle
        header = header[: controls.snap(header, found)]
    if not header:
        return high, high
    start = text.rfind(header, low, high)
    return start, start + len(header)


def _after(text: str | None, mark: str) -> str | None:
    if text is None or mark not in text:
        return None
    return text[text.index(mark) + len(mark) :]


def _turn_end(
    chat: _Chat, index: int, sentinel_text: str, last: tuple[int, int, str], alone: str | None, header: str
) -> int:
    """Where a turn ends in the sentinel text: after its end-of-turn token and separator.

    ``last`` is its last sentinel and ``alone`` the rendering that ends with the turn. What the template
    writes after the sentinel whatever follows (the next message, nothing, another kind of message) ends
    the turn.
    """
    if index == len(chat.messages) - 1:
        return len(sentinel_text)  # the last message: everything the template writes after it
    controls, (_, after, mark) = chat.controls, last
    following = sentinel_text[after:]
    role = chat.messages[index + 1].get("role")
    probe = {"role": "tool" if role == "user" else "user", "content": "Probe."}
    probed = chat.try_render([*chat.messages[:index], chat.sentinel_messages[index], probe])
    length = len(following)
    for other in (_after(alone, mark), _after(probed, mark)):
        if other is not None:
            length = min(length, _common_prefix_length(following, other))
    length = controls.snap(following, length)
    if controls.contains(following[:length]):
        return after + length
    return after + _end_of_turn_in_run(following, header, chat.tokenizer.eos_token, controls)


def _end_of_turn_in_run(following: str, header: str, eos: str | None, controls: _Controls) -> int:
    """Where the turn ends in the run of control tokens after it, when the renderings do not say.

    The turn ends differently as the last message (gpt-oss: ``<|return|>`` vs ``<|end|>``): the next
    message starts at the block opener the header starts with, or after the last eos token, or at the
    last control token of the run.
    """
    run = controls.leading(following)
    opener = controls.first(header)
    for match in run:
        if match.group() == opener:
            return match.start()
    ends = [m for m in run if m.group() == eos]
    if ends:
        end = ends[-1].end()
        return end + len(following[end:]) - len(following[end:].lstrip())
    return run[-1].start() if len(run) > 1 else 0


def _interruption(
    sentinel_text: str,
    alone: str | None,
    first: tuple[int, int, str],
    second: tuple[int, int, str],
    controls: _Controls,
) -> tuple[int, int] | None:
    """Another message rendered between two sentinels of one message (Gemma 4 puts the tool response
    between the tool call and the text): the end of the first piece and the start of the second."""
    if alone is None or first[2] not in alone or second[2] not in alone:
        return None
    a, b = alone.index(first[2]) + len(first[2]), alone.index(second[2])
    between, between_alone = sentinel_text[first[1] : second[0]], alone[a:b]
    if b < a or between == between_alone:
        return None
    head = controls.snap(between, _common_prefix_length(between, between_alone))
    tail = len(between) - controls.snap_forward(
        between, len(between) - _common_suffix_length(between, between_alone)
    )
    if head + tail >= len(between):
        return None
    return first[1] + head, second[0] - tail


def _pieces(chat: _Chat, sentinel_text: str) -> list[_Piece]:
    """The trained pieces of every assistant message the template renders, in order."""
    controls = chat.controls
    pieces: list[_Piece] = []
    cursor = 0
    for index, marks in chat.marks.items():
        found = sorted((p, p + len(m), m) for m in marks if (p := sentinel_text.find(m, cursor)) >= 0)
        if not found:
            continue  # the template does not render this message
        header_start, header_end = _header(chat, index, sentinel_text, cursor, found[0][0])
        header = sentinel_text[header_start:header_end]
        starts, ends = [header_end], []
        # The rendering that ends with this turn: only read between two sentinels of the turn and to end a
        # turn that is not the last message.
        alone = None
        if len(found) > 1 or index != len(chat.messages) - 1:
            alone = chat.try_render([*chat.messages[:index], chat.sentinel_messages[index]])
        for first, second in itertools.pairwise(found):
            cut = _interruption(sentinel_text, alone, first, second, controls)
            if cut is not None:
                ends.append(cut[0])
                starts.append(cut[1])
        last = found[-1]
        ends.append(_turn_end(chat, index, sentinel_text, last, alone, header))
        for number, (start, end) in enumerate(zip(starts, ends, strict=True)):
            tail_from = max([e for _, e, _ in found if e <= end] or [start])
            pieces.append(_Piece(index, start, end, len(header) if number == 0 else 0, end - tail_from))
        cursor = ends[-1]
    return pieces


def _char_spans(chat: _Chat, rendered: str) -> list[tuple[int, int, int]]:
    """``(start, end, message_index)`` in ``rendered`` of every trained piece of every assistant turn.

    The text between two pieces (other messages, headers) does not depend on the assistant contents: it
    is the same in ``rendered`` and in the sentinel rendering, and the pieces of ``rendered`` are what
    lies between.
    """
    sentinel_text = chat.render(chat.sentinel_messages)
    unanchored = frozenset(i for i, marks in chat.marks.items() if not any(m in sentinel_text for m in marks))
    if unanchored:  # a tool call the template drops with an empty content: anchor on a string content
        forced = chat.with_sentinels(rendered, force_content=unanchored)
        forced_text = forced.try_render(forced.sentinel_messages)
        if forced_text is not None:
            chat, sentinel_text = forced, forced_text
    pieces = _pieces(chat, sentinel_text)
    spans: list[tuple[int, int, int]] = []
    position = 0  # in `rendered`: where the current piece starts
    for number, piece in enumerate(pieces):
        previous = pieces[number - 1] if number else None
        gap = sentinel_text[previous.end if previous else 0 : piece.start]
        tail = sentinel_text[previous.end - previous.tail : previous.end] if previous else ""
        found = None
        if previous is not None and not gap and not tail:  # two replies back to back (Gemma 4)
            found = _after_piece(
                rendered, sentinel_text[previous.start : previous.end], chat.originals, position
            )
        if found is None:
            found = _find_gap(rendered, tail, gap, piece.header, position, first=previous is None)
        if found is None:
            raise RowError(
                f"Could not find assistant message {piece.message_index} in the rendered conversation: the "
                "chat template renders the text around it differently when the assistant contents change.",
                field="messages",
            )
        if previous is not None:
            spans.append((position, found[0], previous.message_index))
        position = found[1]
    if pieces:
        trailing = sentinel_text[pieces[-1].end :]
        end = len(rendered) - len(trailing)
        if not rendered.endswith(trailing) or end < position:
            end = rendered.find(trailing, position)
        if end < 0:
            raise RowError(
                f"Could not find where assistant message {pieces[-1].message_index} ends in the rendered "
                "conversation.",
                field="messages",
            )
        spans.append((position, end, pieces[-1].message_index))
    return spans


def _after_piece(
    rendered: str, piece: str, originals: Mapping[str, str], start: int
) -> tuple[int, int] | None:
    """Where a piece with nothing after it ends in ``rendered``: its text, the sentinels replaced by what
    they stand for (as is, or stripped the way templates strip contents)."""
    for form in (str, str.strip, str.lstrip, str.rstrip):
        text = piece
        for mark, original in originals.items():
            text = text.replace(mark, form(original))
        if rendered.startswith(text, start):
            return start + len(text), start + len(text)
    return None


def _find_gap(
    rendered: str, tail: str, gap: str, header: int, start: int, *, first: bool
) -> tuple[int, int] | None:
    """Where the previous piece ends and the next starts in ``rendered``, searching from ``start``.

    ``tail`` ends the previous piece, ``gap`` lies between the two pieces and ends with a header of
    ``header`` characters.
    """
    if first:
        return (0, len(gap)) if rendered.startswith(gap) else None
    for text, skip in ((tail + gap, len(tail)), (gap, 0)):
        if text:
            position = rendered.find(text, start)
            if position >= 0:
                return position + skip, position + len(text)
    # The header may depend on the content (a reply block opened only for text, say): find the text
    # before it, then as much of the header as is there.
    before = gap[: len(gap) - header]
    position = rendered.find(before, start) if before else -1
    if position < 0:
        return None
    end = position + len(before)
    return position, end + _common_prefix_length(gap[len(before) :], rendered[end : end + header])


# --------------------------------------------------------------------------------------
# Tokens and labels
# --------------------------------------------------------------------------------------


def _tokenize_chat(chat: _Chat, chosen: set[int], require_end_of_turn: bool) -> MaskedTokens:
    rendered, char_spans = _render_spans(chat, chosen)
    encoding = chat.tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    return _label_chat(
        chat.tokenizer,
        rendered,
        encoding["input_ids"],
        encoding["offset_mapping"],
        char_spans,
        chosen,
        require_end_of_turn,
        assistant_turns(chat, chosen),
    )


def _render_spans(chat: _Chat, chosen: set[int]) -> tuple[str, list[tuple[int, int, int]]]:
    """The rendered conversation and the character spans of its assistant turns (none when nothing is
    trained): everything of a row that needs the template, and no tokenizer call."""
    try:
        rendered = chat.render(chat.messages)
    except Exception as exc:  # the template refuses the row (roles, system message, content type, ...)
        raise RowError(f"The chat template cannot render this conversation: {exc}", field="messages") from exc
    char_spans = _char_spans(chat.with_sentinels(rendered), rendered) if chosen else []
    turns = assistant_turns(chat, chosen)
    if chosen != turns:  # system, user or tool messages chosen by loss roles
        char_spans = content_spans(chat.messages, rendered, chosen, char_spans)
    return rendered, char_spans


def assistant_turns(chat: _Chat, chosen: set[int]) -> set[int]:
    """The assistant messages among those trained: the turns whose end-of-turn token is checked."""
    return {i for i in chosen if chat.messages[i].get("role") == "assistant"}


def _label_chat(
    tokenizer: PreTrainedTokenizerBase,
    rendered: str,
    ids: Sequence[int],
    offset_mapping: Sequence[Sequence[int]],
    char_spans: Sequence[tuple[int, int, int]],
    chosen: set[int],
    require_end_of_turn: bool,
    turns: set[int] | None = None,
) -> MaskedTokens:
    """Labels of a rendered conversation from its tokens and offsets (one call of a batch or alone);
    ``turns`` are the assistant messages whose end-of-turn token is checked (``chosen`` when None)."""
    input_ids: list[int] = list(ids)
    offsets: list[tuple[int, int]] = [(o[0], o[1]) for o in offset_mapping]
    stops = [stop for _, stop in offsets]
    labels = [IGNORE_INDEX] * len(input_ids)
    spans: list[TokenSpan] = []
    for begin, end, index in char_spans:
        tokens = _overlapping(offsets, stops, begin, end) if index in chosen else []
        if not tokens:
            continue
        for position in tokens:
            labels[position] = input_ids[position]
        if spans and spans[-1].message_index == index and spans[-1].end >= tokens[0]:
            spans[-1] = spans[-1]._replace(end=tokens[-1] + 1)
        else:
            spans.append(TokenSpan(tokens[0], tokens[-1] + 1, index))
    if chosen and not spans:
        raise RowError(
            "The chat template renders none of the assistant messages to train on (is their content in a "
            "form it renders, e.g. a string rather than a list of parts?).",
            field="messages",
        )
    checked = chosen if turns is None else turns
    missing = _turns_without_end(tokenizer, input_ids, [s for s in spans if s.message_index in checked])
    if missing and require_end_of_turn:
        raise DatasetError(
            f"The chat template writes no end-of-turn token inside assistant message {missing[0]}: the last "
            "token of the turn is content, so the model would never learn to stop. The template probably "
            "writes the token that ends an assistant turn at the start of the next message (like GLM-4's "
            "'<|user|>'). Use a chat template that closes each assistant turn itself, train every token with "
            "loss('trl') or loss('all'), or pass require_end_of_turn=False to train without it."
        )
    return MaskedTokens(input_ids, labels, tuple(spans), not missing, rendered)


def _overlapping(offsets: Sequence[tuple[int, int]], stops: Sequence[int], begin: int, end: int) -> list[int]:
    """Indices of the tokens that overlap characters ``[begin, end)`` (transformers' assistant-mask rule)."""
    found = []
    for k in range(bisect.bisect_right(stops, begin), len(offsets)):
        start, stop = offsets[k]
        if start >= end:
            break
        if stop > start:
            found.append(k)
    return found


def _plain(tokenizer: PreTrainedTokenizerBase, ids: list[int], start: int, text: str) -> MaskedTokens:
    labels = [IGNORE_INDEX] * start + ids[start:]
    spans = (TokenSpan(start, len(ids), -1),) if start < len(ids) else ()
    masked = MaskedTokens(ids, labels, spans, True, text)
    return attrs.evolve(masked, end_of_turn_trained=end_of_turn_trained(tokenizer, masked))
