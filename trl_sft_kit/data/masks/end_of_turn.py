"""The end-of-turn rules: where a trained turn ends, and whether it ends on a token the model can stop on.

A turn ends after what the template writes after its last sentinel whatever follows (the end-of-turn
token and its separator, or a tool-call stop token); every trained turn must end on a control token, or
the model never learns to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trl_sft_kit.data.masks.prefixes import _common_prefix_length
from trl_sft_kit.data.masks.tokens import MaskedTokens, TokenSpan

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.masks.controls import _Controls
    from trl_sft_kit.data.masks.rendering import _Chat


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


def control_ids(tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """The ids of the tokenizer's control tokens: its added and special tokens (work it out once a batch)."""
    return frozenset(tokenizer.get_added_vocab().values()) | frozenset(tokenizer.all_special_ids)


def _turns_without_end(
    tokenizer: PreTrainedTokenizerBase,
    input_ids: Sequence[int],
    spans: Sequence[TokenSpan],
    control: frozenset[int] | None = None,
) -> list[int]:
    """The messages whose last trained span does not end on a control token (whitespace aside);
    ``control`` is ``control_ids(tokenizer)``, worked out here when not given."""
    if control is None:
        control = control_ids(tokenizer)
    last = {span.message_index: span for span in spans}
    return [index for index, span in last.items() if not _ends_on(tokenizer, input_ids, span, control)]


def _ends_on(
    tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], span: TokenSpan, control: frozenset[int]
) -> bool:
    for index in range(span.end - 1, span.start - 1, -1):
        if str(tokenizer.decode([ids[index]])).strip():
            return ids[index] in control
    return False


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
