"""The span finder: the characters of each assistant turn in the real rendering of a conversation.

Each turn is found exactly in the sentinel rendering (after its header, through its end of turn, less
any message rendered inside it); the text between two turns is the same in both renderings, so the
turns of the real rendering are what lies between.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from trl_sft_kit.data.masks.end_of_turn import _turn_end
from trl_sft_kit.data.masks.prefixes import _common_prefix_length, _common_suffix_length
from trl_sft_kit.errors import RowError

if TYPE_CHECKING:
    from trl_sft_kit.data.masks.controls import _Controls
    from trl_sft_kit.data.masks.rendering import _Chat


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
    chat, sentinel_text, pieces, _ = _layout(chat, rendered)
    return _locate(rendered, sentinel_text, pieces, chat.originals)


def _layout(chat: _Chat, rendered: str) -> tuple[_Chat, str, list[_Piece], bool]:
    """The sentinel rendering of ``chat`` (with the sentinels anchoring every turn) and its trained pieces:
    everything the span finder renders. The flag says whether a turn had to be anchored on a forced
    content sentinel."""
    sentinel_text = chat.render(chat.sentinel_messages)
    unanchored = frozenset(i for i, marks in chat.marks.items() if not any(m in sentinel_text for m in marks))
    forced_any = False
    if unanchored:  # a tool call the template drops with an empty content: anchor on a string content
        forced_any = True
        forced = chat.with_sentinels(rendered, force_content=unanchored)
        forced_text = forced.try_render(forced.sentinel_messages)
        if forced_text is not None:
            chat, sentinel_text = forced, forced_text
    return chat, sentinel_text, _pieces(chat, sentinel_text), forced_any


def _locate(
    rendered: str, sentinel_text: str, pieces: list[_Piece], originals: Mapping[str, str]
) -> list[tuple[int, int, int]]:
    """The spans of ``pieces`` of ``sentinel_text`` in ``rendered``: what lies between the texts around."""
    spans: list[tuple[int, int, int]] = []
    position = 0  # in `rendered`: where the current piece starts
    for number, piece in enumerate(pieces):
        previous = pieces[number - 1] if number else None
        gap = sentinel_text[previous.end if previous else 0 : piece.start]
        tail = sentinel_text[previous.end - previous.tail : previous.end] if previous else ""
        found = None
        if previous is not None and not gap and not tail:  # two replies back to back (Gemma 4)
            found = _after_piece(rendered, sentinel_text[previous.start : previous.end], originals, position)
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
