"""Hypothesis strategies: rows of every built-in dataset format, and junk, for property tests.

This repository's format tests use them, and downstream repositories can too, to property-test their own
detectors (a plug-in's rows must not be claimed by a built-in, junk must raise only the kit's errors)::

    from hypothesis import given
    from trl_sft_kit.formats import detect_format
    from trl_sft_kit.testing.strategies import cases

    @given(cases("sharegpt"))
    def test_sharegpt_rows_are_detected(case):
        assert detect_format([case.row], 1, case.options).format == "sharegpt"

Rows carry unicode, empty strings where the format allows them, long strings, many turns, system prompts and
tool calls where the format has them, and unrelated extra columns. Importing this module imports hypothesis
(a test dependency: ``pip install 'trl-sft-kit[testing]'``); without it the import raises
``MissingDependencyError`` saying so. ``import trl_sft_kit.testing`` does not import it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import attrs

from trl_sft_kit.errors import MissingDependencyError
from trl_sft_kit.formats.protocol import FormatOptions
from trl_sft_kit.testing.sample_data import FORMATS

try:
    from hypothesis import strategies as st
except ModuleNotFoundError as exc:
    if exc.name != "hypothesis":
        raise
    raise MissingDependencyError(
        "trl_sft_kit.testing.strategies builds hypothesis strategies, and the 'hypothesis' package is not "
        "installed. Install it with pip install 'trl-sft-kit[testing]' (or pip install hypothesis).",
        package="hypothesis",
        extra="testing",
    ) from exc

__all__ = [
    "BUILTIN_FORMATS",
    "FIELD_NAMES",
    "TEXT_FIELDS",
    "RowCase",
    "case_lists",
    "cases",
    "contents",
    "conversations",
    "json_values",
    "junk",
    "junk_datasets",
    "near_misses",
    "rows",
    "strings_in",
    "texts",
    "tool_calls",
    "tool_schemas",
]

BUILTIN_FORMATS: tuple[str, ...] = (*FORMATS, "preference_chosen")  # the sample-data formats + preference
"""The built-in formats ``cases`` and ``rows`` generate rows of."""

FIELD_NAMES: tuple[str, ...] = (
    "messages", "conversations", "role", "content", "from", "value", "tool_calls", "function", "name",
    "arguments", "id", "type", "tool_call_id", "tools", "system", "instruction", "input", "output",
    "history", "response", "question", "answer", "prompt", "query", "completion", "context", "text",
    "chosen", "rejected", "label", "reasoning_content", "thinking", "train", "weight",
)  # fmt: skip
"""Field names the built-in formats read: junk uses them so that it reaches past detection."""

EXTRA_FIELDS = ("id", "source", "lang", "meta", "score")
"""Unrelated columns real datasets carry; no built-in format reads them."""


@attrs.frozen
class RowCase:
    """A generated row with what a test needs to check its conversion.

    Attributes:
        format: the built-in format the row is in.
        row: the row.
        texts: the strings that must appear, whole, in some string of the converted row.
        options: the options to detect and convert it with (text field, chat template or not).
        tools: the tool schemas the converted row must carry (``tools`` as JSON), or ``None``.
        excluded: the format leaves this row out on purpose (a KTO row labelled false).
        joined: for preference rows whose prompt is inside chosen: chosen == prompt + completion.
    """

    format: str
    row: dict[str, Any]
    texts: tuple[str, ...]
    options: FormatOptions = attrs.field(factory=FormatOptions)
    tools: list[dict[str, Any]] | None = None
    excluded: bool = False
    joined: bool = False


# ---------------------------------------------------------------------------------------------- text

_CHARS = st.characters(codec="utf-8", exclude_categories=["Cs"])


def texts(*, long: bool = True) -> st.SearchStrategy[str]:
    """Unicode strings with more than whitespace in them; now and then a long one (up to 1,000 chars)."""
    short = st.text(_CHARS, min_size=1, max_size=24)
    strategy = st.one_of(short, short, short, st.text(_CHARS, min_size=200, max_size=1000)) if long else short
    return strategy.filter(lambda text: text.strip() != "")


def _blank() -> st.SearchStrategy[str]:
    return st.sampled_from(["", " ", "\n"])


_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)


@st.composite
def contents(draw: st.DrawFn) -> tuple[Any, list[str]]:
    """A message content, a string or a list of text parts, with the strings that must survive."""
    parts = draw(st.lists(texts(), min_size=1, max_size=3))
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0], parts
    typed = [draw(st.sampled_from(["typed", "untyped", "bare"])) for _ in parts]
    content = [
        {"type": "text", "text": part} if kind == "typed" else {"text": part} if kind == "untyped" else part
        for part, kind in zip(parts, typed, strict=True)
    ]
    return content, parts


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)


@st.composite
def tool_calls(draw: st.DrawFn, *, flat: bool | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """One to three tool calls, with the strings that must survive (names and string argument values).

    Calls are OpenAI's ``{"type": "function", "function": {"name", "arguments"}}`` (``flat=False``), flat
    ``{"name", "arguments"}`` as ShareGPT's ``function_call`` turns hold them (``flat=True``), or now and
    then flat (``None``); arguments are an object or a JSON string.
    """
    calls = []
    strings: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(_NAMES)
        arguments = draw(st.dictionaries(_NAMES, st.one_of(texts(long=False), _SCALARS), max_size=3))
        strings += [name, *(value for value in arguments.values() if isinstance(value, str))]
        encoded: Any = (
            json.dumps(arguments, ensure_ascii=draw(st.booleans())) if draw(st.booleans()) else arguments
        )
        if flat or (flat is None and draw(st.integers(0, 3)) == 0):
            calls.append({"name": name, "arguments": encoded})
            continue
        call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": encoded}}
        if draw(st.booleans()):
            call["id"] = draw(st.from_regex(r"call_[A-Za-z0-9]{1,8}", fullmatch=True))
        calls.append(call)
    return calls, strings


def tool_schemas() -> st.SearchStrategy[list[dict[str, Any]]]:
    """A non-empty list of function tool schemas, as a ``tools`` column holds them."""
    schema = st.builds(
        lambda name, description, params: {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {"type": "object", "properties": {p: {"type": "string"} for p in params}},
            },
        },
        _NAMES,
        texts(long=False),
        st.lists(_NAMES, max_size=3, unique=True),
    )
    return st.lists(schema, min_size=1, max_size=3)


# ---------------------------------------------------------------------------------------------- chats

_SHAREGPT_ROLES = {
    "user": ("human", "user"),
    "assistant": ("gpt", "assistant", "bot", "model", "chatgpt"),
    "tool": ("observation", "tool", "function_response"),
}


@st.composite
def conversations(
    draw: st.DrawFn,
    *,
    style: str = "openai",
    need_assistant: bool = True,
    system: bool | None = None,
    tools: bool = True,
    max_turns: int = 6,
) -> tuple[list[dict[str, Any]], list[str]]:
    """A conversation, OpenAI ``{role, content}`` or ShareGPT ``{from, value}`` (``style="sharegpt"``).

    Args:
        style: ``"openai"`` or ``"sharegpt"``.
        need_assistant: end on an assistant turn (otherwise on a user turn: a prompt).
        system: start with a system message (``None``: sometimes).
        tools: some assistant turns call tools, followed by the tools' results.
        max_turns: the most user turns.

    Returns:
        The messages and the strings that must survive conversion.
    """
    messages: list[dict[str, Any]] = []
    strings: list[str] = []
    sharegpt = style == "sharegpt"

    def add(role: str, content: Any, parts: list[str], **extra: Any) -> None:
        if sharegpt:
            source_role = draw(st.sampled_from(_SHAREGPT_ROLES.get(role, (role,))))
            messages.append({"from": source_role, "value": content, **extra})
        else:
            messages.append({"role": role, "content": content, **extra})
        strings.extend(parts)

    if system if system is not None else draw(st.booleans()):
        text = draw(texts())
        add("system", text, [text])
    turns = draw(st.integers(1, max_turns))
    for turn in range(turns):
        content, parts = draw(texts().map(lambda t: (t, [t]))) if sharegpt else draw(contents())
        add("user", content, parts)
        if turn == turns - 1 and not need_assistant:
            break
        if tools and draw(st.integers(0, 3)) == 0:
            calls, call_strings = draw(tool_calls(flat=True if sharegpt else None))
            if sharegpt:
                value = calls[0] if len(calls) == 1 and draw(st.booleans()) else calls
                messages.append({"from": "function_call", "value": json.dumps(value, ensure_ascii=False)})
                strings.extend(call_strings)
            else:
                empty = draw(st.sampled_from([None, ""]))
                messages.append({"role": "assistant", "content": empty, "tool_calls": calls})
                strings.extend(call_strings)
            for call in calls:
                result = draw(texts(long=False))
                extra: dict[str, Any] = {}
                if not sharegpt and draw(st.booleans()):
                    extra["name"] = call.get("function", call)["name"]
                if not sharegpt and "id" in call:
                    extra["tool_call_id"] = call["id"]
                add("tool", result, [result], **extra)
        content, parts = draw(texts().map(lambda t: (t, [t]))) if sharegpt else draw(contents())
        extra = {}
        if not sharegpt and draw(st.integers(0, 4)) == 0:
            reasoning = draw(texts(long=False))
            extra[draw(st.sampled_from(["reasoning_content", "thinking"]))] = reasoning
            parts = [*parts, reasoning]
        add("assistant", content, parts, **extra)
    return messages, strings


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


# ---------------------------------------------------------------------------------------------- junk


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value: scalars, strings, and lists and objects of them, keyed often by format field names."""
    keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(_CHARS, max_size=8))
    scalars = st.one_of(
        _SCALARS, st.text(_CHARS, max_size=12), st.sampled_from(["", " ", "user", "gpt", "assistant"])
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


@st.composite
def near_misses(draw: st.DrawFn, format: str | None = None) -> dict[str, Any]:
    """A generated row of a built-in format with one value somewhere replaced by junk, or removed."""
    row = copy.deepcopy(draw(rows(format)))
    paths = list(_paths(row))
    path = draw(st.sampled_from(paths))
    parent: Any = row
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values())
    return row


def junk() -> st.SearchStrategy[Any]:
    """Rows a dataset should not have: any JSON value, objects of format fields with junk, near misses."""
    return st.one_of(
        json_values(),
        st.dictionaries(st.sampled_from(FIELD_NAMES), json_values(), min_size=1, max_size=4),
        near_misses(),
    )


def junk_datasets() -> st.SearchStrategy[list[Any]]:
    """Whole datasets of junk: one to six rows, good ones among them now and then."""
    return st.lists(st.one_of(junk(), junk(), rows()), min_size=1, max_size=6)


def strings_in(value: Any) -> Iterator[str]:
    """Every string value inside a JSON value (keys left out), to check that conversion loses no text."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_in(item)
