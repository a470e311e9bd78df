"""Running a detector on one row safely: its failures become the kit's errors, its output is checked.

Built-in detectors raise only ``RowError``. A plug-in may raise anything, or return a row that is not
canonical; either is reported as a ``PluginError`` that names the plug-in, its provider and the row, since
it is a bug of the plug-in, not a problem of the data. A plug-in's canonical row is then checked by the
built-in detector of its kind (``messages``, ``prompt_completion`` or ``text``), so it meets the same rules
as every other row; a problem found there is a ``RowError`` of that row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trl_sft_kit.errors import PluginError, RowError, SFTKitError
from trl_sft_kit.formats.builtin import MessagesFormat, PromptCompletionFormat, TextFormat
from trl_sft_kit.formats.messages import tools_json
from trl_sft_kit.formats.protocol import CANONICAL_KINDS, FormatMatch, FormatOptions
from trl_sft_kit.plugins import BUILTIN, Registration

__all__ = ["CANONICAL_FIELDS", "checked_match", "convert_row"]

CANONICAL_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "messages": (frozenset({"messages"}), frozenset({"messages", "tools"})),
    "prompt_completion": (frozenset({"prompt", "completion"}), frozenset({"prompt", "completion", "tools"})),
    "text": (frozenset({"text"}), frozenset({"text"})),
}
"""For each canonical kind: the fields a row must have, and the fields it may have."""

_CHECKERS: dict[str, Any] = {
    "messages": MessagesFormat(),
    "prompt_completion": PromptCompletionFormat(),
    "text": TextFormat(),
}


def _failure(registration: Registration[Any], method: str, where: str, exc: BaseException) -> PluginError:
    return PluginError(
        f"the format detector {registration.name!r} from {registration.provider} failed in {method}() on "
        f"{where} ({type(exc).__name__}: {exc}). That is a bug of the detector: convert() must raise "
        "trl_sft_kit.errors.RowError for rows it cannot convert. Fix or update that package, or choose "
        "another format with .dataset(..., format=<name>).",
        name=registration.name,
        provider=registration.provider,
    )


def checked_match(
    registration: Registration[Any], row: Mapping[str, Any], options: FormatOptions, where: str
) -> FormatMatch:
    """``match()`` of a registered detector; anything but a ``FormatMatch`` is a ``PluginError``."""
    try:
        match = registration.plugin.match(row, options)
    except SFTKitError:
        raise
    except Exception as exc:
        raise _failure(registration, "match", where, exc) from exc
    if not isinstance(match, FormatMatch):
        raise PluginError(
            f"the format detector {registration.name!r} from {registration.provider} returned "
            f"{type(match).__name__} from match() on {where}; it must return a FormatMatch "
            "(FormatMatch.yes(score, reason) or FormatMatch.no(reason)).",
            name=registration.name,
            provider=registration.provider,
        )
    return match


def convert_row(
    registration: Registration[Any], row: Mapping[str, Any], options: FormatOptions, where: str
) -> dict[str, Any]:
    """Convert one row with a registered detector, as the module docstring describes.

    Args:
        registration: the detector and who provided it.
        row: the row (a mapping).
        options: the dataset's format options.
        where: the row, for messages (``data.jsonl, line 3``).

    Raises:
        RowError: the row cannot be trained on (``RowExcludedError``: the format leaves it out on purpose).
        PluginError: the detector failed otherwise, or returned a row that is not canonical.
    """
    detector = registration.plugin
    try:
        converted = detector.convert(row, options)
    except SFTKitError:
        raise
    except Exception as exc:
        raise _failure(registration, "convert", where, exc) from exc
    if registration.provider == BUILTIN:
        return converted
    return _checked_output(registration, converted, options, where)


def _checked_output(
    registration: Registration[Any], converted: Any, options: FormatOptions, where: str
) -> dict[str, Any]:
    kind = registration.plugin.canonical
    required, allowed = CANONICAL_FIELDS.get(kind, (frozenset(), frozenset()))
    if kind not in CANONICAL_KINDS or not isinstance(converted, Mapping) or not required <= set(converted):
        got = sorted(converted) if isinstance(converted, Mapping) else type(converted).__name__
        raise PluginError(
            f"the format detector {registration.name!r} from {registration.provider} converted {where} to "
            f"{got}; a {kind!r} row needs the fields {sorted(required)} (and may have {sorted(allowed)}).",
            name=registration.name,
            provider=registration.provider,
        )
    canonical = {key: value for key, value in converted.items() if key in allowed}
    try:
        checked: dict[str, Any] = _CHECKERS[kind].convert(canonical, FormatOptions(chat=options.chat))
    except RowError as exc:
        raise RowError(
            f"{exc.reason.rstrip('.')} (in the {kind!r} row that format {registration.name!r} made of it).",
            field=exc.field,
        ) from None
    if "tools" in canonical and "tools" not in checked:
        tools = tools_json(canonical["tools"])
        if tools is not None:
            checked["tools"] = tools
    return checked
