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

The strategies live in one module each: ``values`` (the formats, field names and ``RowCase``), ``text``
(strings, contents, tool calls), ``chats`` (conversations), ``rows`` (rows of every format) and ``junk``.
"""

from __future__ import annotations

from trl_sft_kit.errors import MissingDependencyError

try:
    import hypothesis  # noqa: F401  (the modules below build on it)
except ModuleNotFoundError as exc:
    if exc.name != "hypothesis":
        raise
    raise MissingDependencyError(
        "trl_sft_kit.testing.strategies builds hypothesis strategies, and the 'hypothesis' package is not "
        "installed. Install it with pip install 'trl-sft-kit[testing]' (or pip install hypothesis).",
        package="hypothesis",
        extra="testing",
    ) from exc

from trl_sft_kit.testing.strategies.chats import conversations
from trl_sft_kit.testing.strategies.junk import json_values, junk, junk_datasets, near_misses, strings_in
from trl_sft_kit.testing.strategies.rows import TEXT_FIELDS, case_lists, cases, rows
from trl_sft_kit.testing.strategies.text import contents, texts, tool_calls, tool_schemas
from trl_sft_kit.testing.strategies.values import BUILTIN_FORMATS, FIELD_NAMES, RowCase

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
