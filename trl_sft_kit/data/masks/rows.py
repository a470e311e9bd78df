"""The public tokenize functions, one per canonical row kind: conversation, prompt/completion, text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from trl_sft_kit.data.loss_roles import message_roles
from trl_sft_kit.data.masks.labels import _plain, _tokenize_chat
from trl_sft_kit.data.masks.prefixes import _common_prefix_length
from trl_sft_kit.data.masks.rendering import _Chat, _is_trained
from trl_sft_kit.errors import RowError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.masks.tokens import MaskedTokens

Turns = Literal["all", "last"]


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
