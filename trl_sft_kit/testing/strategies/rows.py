"""Rows of every built-in format (``cases``, ``case_lists``, ``rows``), with what conversion must keep."""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import strategies as st

from trl_sft_kit.formats.protocol import FormatOptions
from trl_sft_kit.testing.strategies.chats import conversations
from trl_sft_kit.testing.strategies.text import _blank, contents, texts, tool_schemas
from trl_sft_kit.testing.strategies.values import BUILTIN_FORMATS, EXTRA_FIELDS, RowCase

# ---------------------------------------------------------------------------------------------- rows


def _extras() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.sampled_from(EXTRA_FIELDS), st.one_of(st.integers(), texts(long=False)), max_size=2
    )


@st.composite
def _tools_column(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]] | None]:
    kind = draw(st.sampled_from(["none", "list", "json", "empty"]))
    if kind == "none":
        return None, None
    if kind == "empty":
        return draw(st.sampled_from(["", [], "[]"])), None
    schemas = draw(tool_schemas())
    return (schemas if kind == "list" else json.dumps(schemas, ensure_ascii=draw(st.booleans()))), schemas


def _with_tools(draw: st.DrawFn, format: str, row: dict[str, Any], strings: list[str]) -> RowCase:
    """Finish a chat row: maybe add a ``tools`` column (drawn), and wrap it as a ``RowCase``."""
    column, schemas = draw(_tools_column())
    if column is not None:
        row["tools"] = column
    return RowCase(format, row, tuple(strings), tools=schemas)


@st.composite
def _messages(draw: st.DrawFn) -> RowCase:
    messages, strings = draw(conversations())
    row: dict[str, Any] = {**draw(_extras()), "messages": messages}
    return _with_tools(draw, "messages", row, strings)


@st.composite
def _sharegpt(draw: st.DrawFn) -> RowCase:
    has_system_column = draw(st.booleans())
    turns, strings = draw(conversations(style="sharegpt", system=False if has_system_column else None))
    row: dict[str, Any] = {**draw(_extras()), "conversations": turns}
    if has_system_column:
        system = draw(st.one_of(texts(), _blank()))
        row["system"] = system
        strings = [system, *strings] if system.strip() else strings
    return _with_tools(draw, "sharegpt", row, strings)


@st.composite
def _alpaca(draw: st.DrawFn) -> RowCase:
    instruction, output = draw(texts()), draw(texts())
    row: dict[str, Any] = {**draw(_extras()), "instruction": instruction, "output": output}
    strings = [instruction, output]
    context = draw(st.one_of(st.none(), st.just(""), texts()))
    if context is not None:
        row["input"] = context
        strings += [context] if context else []
    if draw(st.booleans()):
        row["system"] = draw(st.one_of(texts(), st.just("")))
        strings += [row["system"]] if row["system"] else []
    if draw(st.booleans()):
        history = draw(st.lists(st.tuples(texts(long=False), texts(long=False)), max_size=4))
        row["history"] = [list(pair) for pair in history]
        strings += [text for pair in history for text in pair]
    return RowCase("alpaca", row, tuple(strings))


_PAIRS = (
    ("instruction", "response"),
    ("question", "answer"),
    ("prompt", "response"),
    ("query", "response"),
    ("input", "output"),
)


@st.composite
def _instruction_response(draw: st.DrawFn) -> RowCase:
    question_field, answer_field = draw(st.sampled_from(_PAIRS))
    question, answer = draw(texts()), draw(texts())
    row: dict[str, Any] = {**draw(_extras()), question_field: question, answer_field: answer}
    strings = [question, answer]
    context_field = draw(st.sampled_from([None, "context", "input"]))
    if context_field is not None and context_field not in row:
        row[context_field] = draw(texts())
        strings.append(row[context_field])
    if draw(st.booleans()):
        row["system"] = draw(texts())
        strings.append(row["system"])
    return RowCase("instruction_response", row, tuple(strings))


@st.composite
def _prompt_completion(draw: st.DrawFn) -> RowCase:
    if draw(st.booleans()):
        prompt, completion = draw(texts()), draw(texts())
        return RowCase(
            "prompt_completion",
            {**draw(_extras()), "prompt": prompt, "completion": completion},
            (prompt, completion),
        )
    prompt_messages, strings = draw(conversations(need_assistant=False, tools=False))
    completion_messages = []
    for _ in range(draw(st.integers(1, 2))):
        reply, parts = draw(contents())
        completion_messages.append({"role": "assistant", "content": reply})
        strings += parts
    row = {**draw(_extras()), "prompt": prompt_messages, "completion": completion_messages}
    return RowCase("prompt_completion", row, tuple(strings))


TEXT_FIELDS = ("text", "body", "document", "content")


@st.composite
def _text(draw: st.DrawFn, field: str | None = None) -> RowCase:
    field = field or draw(st.sampled_from(TEXT_FIELDS))
    text = draw(texts())
    return RowCase("text", {field: text}, (text,), options=FormatOptions(text_field=field))


@st.composite
def _preference(draw: st.DrawFn) -> RowCase:
    kind = draw(st.sampled_from(["explicit", "explicit_chat", "implicit_chat", "implicit_text", "kto"]))
    extras = draw(_extras())
    if kind == "explicit":
        prompt, chosen, rejected = draw(texts()), draw(texts()), draw(texts())
        row = {**extras, "prompt": prompt, "chosen": chosen, "rejected": rejected}
        return RowCase("preference_chosen", row, (prompt, chosen))
    if kind in ("explicit_chat", "implicit_chat"):
        prompt_messages, strings = draw(conversations(need_assistant=False, tools=False))
        chosen, rejected = draw(texts()), draw(texts())
        chosen_turn = [{"role": "assistant", "content": chosen}]
        rejected_turn = [{"role": "assistant", "content": rejected}]
        if kind == "explicit_chat":
            row = {**extras, "prompt": prompt_messages, "chosen": chosen_turn, "rejected": rejected_turn}
        else:
            row = {
                **extras,
                "chosen": prompt_messages + chosen_turn,
                "rejected": prompt_messages + rejected_turn,
            }
        return RowCase("preference_chosen", row, (*strings, chosen))
    if kind == "implicit_text":
        prompt = draw(texts())
        chosen = draw(texts().filter(lambda text: not text[0].isspace()))
        rejected = draw(texts().filter(lambda text: not text[0].isspace() and text[0] != chosen[0]))
        row = {**extras, "chosen": f"{prompt} {chosen}", "rejected": f"{prompt} {rejected}"}
        return RowCase("preference_chosen", row, (prompt, chosen), joined=True)
    label = draw(st.booleans())
    case = draw(_prompt_completion())
    row = {**case.row, "label": label}
    return RowCase("preference_chosen", row, case.texts, excluded=not label)


_BUILDERS = {
    "messages": _messages,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "instruction_response": _instruction_response,
    "prompt_completion": _prompt_completion,
    "text": _text,
    "preference_chosen": _preference,
}


def cases(format: str | None = None, *, chat: bool | None = None) -> st.SearchStrategy[RowCase]:
    """``RowCase`` values: generated rows of one built-in format (or of any, when ``format`` is ``None``).

    Args:
        format: one of ``BUILTIN_FORMATS``, or ``None`` for all of them.
        chat: the ``FormatOptions.chat`` to convert with (``None``: either).

    Raises:
        ValueError: an unknown format name.
    """
    names = BUILTIN_FORMATS if format is None else (format,)
    unknown = [name for name in names if name not in _BUILDERS]
    if unknown:
        raise ValueError(
            f"no strategy for format {unknown[0]!r}; built-in formats: {', '.join(BUILTIN_FORMATS)}."
        )
    base = st.one_of([_BUILDERS[name]() for name in names])
    chats = st.booleans() if chat is None else st.just(chat)
    return st.tuples(base, chats).map(
        lambda pair: attrs.evolve(pair[0], options=attrs.evolve(pair[0].options, chat=pair[1]))
    )


@st.composite
def case_lists(
    draw: st.DrawFn, format: str | None = None, *, min_size: int = 1, max_size: int = 6
) -> list[RowCase]:
    """Several ``RowCase`` values of one format (drawn once when ``format`` is ``None``) and one set of
    options, as the rows of one dataset: text rows share their text field."""
    name = format or draw(st.sampled_from(BUILTIN_FORMATS))
    options = FormatOptions(text_field=draw(st.sampled_from(TEXT_FIELDS)), chat=draw(st.booleans()))
    if name == "text":
        base: st.SearchStrategy[RowCase] = _text(options.text_field)
    else:
        base = cases(name)
    found = draw(st.lists(base, min_size=min_size, max_size=max_size))
    return [attrs.evolve(case, options=options) for case in found]


def rows(format: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Rows of one built-in format (or of any); ``cases`` gives the strings and options that go with them."""
    return cases(format).map(lambda case: case.row)
