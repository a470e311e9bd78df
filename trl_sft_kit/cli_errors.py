"""Errors as the command line shows them: advice in flags rather than Python calls, and a JSON form.

The kit's messages name the Python call that fixes a problem (``.dataset(..., format='alpaca')``,
``loss('all')``); on the command line ``command_line_advice`` rewrites those into the flags that do the
same (``--format alpaca``, ``--loss all``). With ``--json``, ``error_json`` is what goes to stdout.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["UsageError", "command_line_advice", "error_json"]

_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.?dataset\(\.\.\., format=<name>\)"), "--format NAME"),
    (re.compile(r"\.?dataset\(\.\.\., format='([a-z_]+)'\)"), r"--format \1"),
    (re.compile(r"\.?dataset\(\.\.\., on_bad_rows=[\"']skip[\"']\)"), "--on-bad-rows skip"),
    (re.compile(r"on_bad_rows=[\"']skip[\"']"), "--on-bad-rows skip"),
    (re.compile(r"\.?loss\('([a-z_]+)'\)"), r"--loss \1"),
    (re.compile(r"\.?training\(max_length=N\)"), "--max-length N"),
    (re.compile(r"\.?chat_template\(<name>\)"), "--chat-template NAME"),
)


class UsageError(Exception):
    """A command line that cannot be run as given (exit code 2, with the command's usage)."""


def command_line_advice(message: str) -> str:
    """``message`` with the Python calls it advises replaced by the matching command-line flags.

    >>> command_line_advice("choose one with .dataset(..., format=<name>), or use loss('all').")
    'choose one with --format NAME, or use --loss all.'
    """
    for pattern, flag in _REWRITES:
        message = pattern.sub(flag, message)
    return message


def error_json(exc: BaseException, message: str) -> str:
    """``{"error": {"type", "message", "file", "line", "field"}}`` for a failure (missing parts are null)."""
    details: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": message,
        "file": getattr(exc, "path", None),
        "line": getattr(exc, "line", None),
        "field": getattr(exc, "field", None) or getattr(exc, "key", None),
    }
    return json.dumps({"error": details}, ensure_ascii=False)
