"""Skeletons: the span finder's work on one shape of conversation, reused for every row of that shape.

The span finder renders a conversation several times (the real rendering, the sentinel rendering, the
header and end-of-turn probes: 8 renderings for two turns). Everything but the real rendering depends on
the contents only through the text the template writes around them, so for a template that treats the
contents as opaque text it is the same for every row with the same shape: the same template and
variables, tools, roles, message keys and values other than the contents, and the same contents empty.

The first row of a shape runs the full algorithm and renders once more with every content (system, user,
tool, assistant content and reasoning) replaced by a placeholder: the *skeleton*, the literal texts
between the contents, and the trained pieces of the sentinel rendering expressed in it. A later row of that
shape renders once; when that rendering is exactly the skeleton filled with the row's contents, its
sentinel rendering is the skeleton filled with its sentinels, the pieces are shifted by the contents'
lengths and located in the real rendering by the same code as the full algorithm. When it is not (a
template that strips contents, branches on them, drops reasoning), the row takes the full algorithm.

Rows with tool calls or list contents always take the full algorithm. The memo is a small LRU per
tokenizer and per process (forked workers have their own).
"""

from __future__ import annotations

import bisect
import json
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.masks.rendering import _REASONING_KEYS
from trl_sft_kit.data.masks.spans import _layout, _locate, _Piece

if TYPE_CHECKING:
    from trl_sft_kit.data.masks.rendering import _Chat

#: False renders every row in full (the tests compare both paths).
ENABLED = True
#: Shapes remembered per tokenizer.
SIZE = 256
#: Rows served from a skeleton, rows that built one, rows of a known shape that did not match it.
COUNTS = {"hits": 0, "misses": 0, "mismatches": 0}
#: Failed builds after which a shape is no longer tried.
_GIVE_UP = 3

_Slot = tuple[int, str]


@attrs.frozen
class _Skeleton:
    #: The template's text before, between and after the slots (one more than the slots).
    literals: tuple[str, ...]
    #: The message index and key of each content, in the order the template writes them.
    slots: tuple[_Slot, ...]
    #: Each trained piece: message index, (literal, offset) of its start and end, header and tail lengths.
    pieces: tuple[tuple[int, tuple[int, int], tuple[int, int], int, int], ...]

    def fill(self, values: Sequence[str]) -> str:
        parts = [self.literals[0]]
        for value, literal in zip(values, self.literals[1:], strict=True):
            parts += (value, literal)
        return "".join(parts)

    def starts(self, values: Sequence[str]) -> list[int]:
        """Where each literal starts in the skeleton filled with ``values``."""
        starts, position = [], 0
        for number, literal in enumerate(self.literals):
            starts.append(position)
            position += len(literal) + (len(values[number]) if number < len(values) else 0)
        return starts


_MEMOS: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[Any, ...], _Skeleton | int]] = (
    weakref.WeakKeyDictionary()
)


def char_spans(chat: _Chat, rendered: str) -> list[tuple[int, int, int]]:
    """The spans ``_char_spans`` finds for ``chat`` rendered as ``rendered``; from a skeleton if one fits."""
    slots = _slots(chat.messages) if ENABLED else None
    memo = _memo(chat.tokenizer) if slots is not None else None
    if slots is None or memo is None:
        return _full(chat, rendered, None)
    key = _key(chat, slots)
    known = memo.get(key)
    if isinstance(known, _Skeleton):
        memo.move_to_end(key)
        spans = _from_skeleton(known, chat, rendered)
        if spans is not None:
            COUNTS["hits"] += 1
            return spans
        COUNTS["mismatches"] += 1
        return _full(chat, rendered, None)
    if known is not None and known >= _GIVE_UP:
        return _full(chat, rendered, None)
    COUNTS["misses"] += 1
    built: list[_Skeleton | None] = []
    spans = _full(chat, rendered, (slots, built))
    memo[key] = built[0] if built and built[0] is not None else (known or 0) + 1
    memo.move_to_end(key)
    while len(memo) > SIZE:
        memo.popitem(last=False)
    return spans


def _full(
    chat: _Chat, rendered: str, build: tuple[list[_Slot], list[_Skeleton | None]] | None
) -> list[tuple[int, int, int]]:
    """The full span finder; with ``build``, also the skeleton of this row's shape (None when it has none)."""
    sentinel_chat, sentinel_text, pieces, forced = _layout(chat.with_sentinels(rendered), rendered)
    spans = _locate(rendered, sentinel_text, pieces, sentinel_chat.originals)
    if build is not None:
        slots, built = build
        built.append(None if forced else _build(chat, sentinel_chat, rendered, sentinel_text, pieces, slots))
    return spans


def _memo(tokenizer: Any) -> OrderedDict[tuple[Any, ...], _Skeleton | int] | None:
    try:
        return _MEMOS.setdefault(tokenizer, OrderedDict())
    except TypeError:  # a tokenizer that cannot be weakly referenced: no memo
        return None


def _has_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _slots(messages: Sequence[Mapping[str, Any]]) -> list[_Slot] | None:
    """The contents a skeleton holds as slots, by message index and key; None when the row cannot have a
    skeleton (tool calls, list contents). The slots are the contents with text, and an assistant content
    the span finder replaces by a sentinel even when empty (a reply with nothing else to anchor it)."""
    slots: list[_Slot] = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if message.get("tool_calls") is not None or not (content is None or isinstance(content, str)):
            return None
        if message.get("role") == "assistant":
            reasoning = [(index, key) for key in _REASONING_KEYS if _has_text(message.get(key))]
            slots += reasoning
            if _has_text(content) or not reasoning:
                slots.append((index, "content"))
        elif _has_text(content):
            slots.append((index, "content"))
    return slots


def _key(chat: _Chat, slots: list[_Slot]) -> tuple[Any, ...]:
    """What a rendering depends on besides the slots' contents."""
    slotted = set(slots)
    shape = tuple(
        tuple(
            (key, "S" if (index, key) in slotted else json.dumps(value, sort_keys=True, default=repr))
            for key, value in sorted(message.items())
        )
        for index, message in enumerate(chat.messages)
    )
    resolved = chat.resolved
    variables = json.dumps(dict(resolved[1]), sort_keys=True, default=repr) if resolved else None
    return (
        resolved[0] if resolved else None,
        variables,
        chat.chat_template,
        json.dumps(dict(chat.template_kwargs), sort_keys=True, default=repr),
        json.dumps(chat.tools, sort_keys=True, default=repr),
        shape,
    )


def _real(chat: _Chat, slot: _Slot) -> str:
    value = chat.messages[slot[0]].get(slot[1])
    return value if isinstance(value, str) else ""


def _sentinels(sentinel_chat: _Chat, slots: Sequence[_Slot]) -> list[str] | None:
    """Each slot's text in the sentinel rendering: its sentinel for an assistant message, else the content."""
    values = []
    for index, key in slots:
        if index in sentinel_chat.marks:
            value = sentinel_chat.sentinel_messages[index].get(key)
            if value not in sentinel_chat.marks[index]:
                return None
            values.append(value)
        else:
            values.append(_real(sentinel_chat, (index, key)))
    return values


def _build(
    chat: _Chat,
    sentinel_chat: _Chat,
    rendered: str,
    sentinel_text: str,
    pieces: list[_Piece],
    slots: list[_Slot],
) -> _Skeleton | None:
    """The skeleton of this row's shape, or None when the template does not write each content once, as
    is, in both renderings."""
    for salt in range(100):
        names = [f"KitMemo{number}Q{salt}Z" for number in range(len(slots))]
        if not any(name in rendered or name in sentinel_text for name in names):
            break
    else:
        return None
    messages = [dict(message) for message in chat.messages]
    for (index, key), name in zip(slots, names, strict=True):
        messages[index][key] = name
    text = chat.try_render(messages)
    if text is None or any(text.count(name) != 1 for name in names):
        return None
    order = sorted(range(len(slots)), key=lambda number: text.index(names[number]))
    literals, position = [], 0
    for number in order:
        at = text.index(names[number])
        literals.append(text[position:at])
        position = at + len(names[number])
    literals.append(text[position:])
    ordered = tuple(slots[number] for number in order)
    sentinels = _sentinels(sentinel_chat, ordered)
    skeleton = _Skeleton(tuple(literals), ordered, ())
    if (
        sentinels is None
        or skeleton.fill([_real(chat, slot) for slot in ordered]) != rendered
        or skeleton.fill(sentinels) != sentinel_text
    ):
        return None
    starts = skeleton.starts(sentinels)

    def where(position: int) -> tuple[int, int] | None:
        number = bisect.bisect_right(starts, position) - 1
        offset = position - starts[number]
        return (number, offset) if offset <= len(literals[number]) else None

    mapped = []
    for piece in pieces:
        start, end = where(piece.start), where(piece.end)
        header, tail = where(piece.start - piece.header), where(piece.end - piece.tail)
        if start is None or end is None or header is None or tail is None:
            return None
        if header[0] != start[0] or tail[0] != end[0]:
            return None
        mapped.append((piece.message_index, start, end, piece.header, piece.tail))
    return attrs.evolve(skeleton, pieces=tuple(mapped))


def _from_skeleton(skeleton: _Skeleton, chat: _Chat, rendered: str) -> list[tuple[int, int, int]] | None:
    """The spans of a row of the skeleton's shape, or None when its rendering is not the skeleton filled."""
    if skeleton.fill([_real(chat, slot) for slot in skeleton.slots]) != rendered:
        return None
    sentinel_chat = chat.with_sentinels(rendered)
    sentinels = _sentinels(sentinel_chat, skeleton.slots)
    if sentinels is None:
        return None
    starts = skeleton.starts(sentinels)
    pieces = [
        _Piece(index, starts[start[0]] + start[1], starts[end[0]] + end[1], header, tail)
        for index, start, end, header, tail in skeleton.pieces
    ]
    return _locate(rendered, skeleton.fill(sentinels), pieces, sentinel_chat.originals)


def clear() -> None:
    """Forget every skeleton and reset the counts (tests start from an empty memo)."""
    _MEMOS.clear()
    COUNTS.update(dict.fromkeys(COUNTS, 0))
