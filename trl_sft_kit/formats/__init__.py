"""Dataset formats: the ``FormatDetector`` plug-in point, its registry, the built-ins and detection."""

from trl_sft_kit.formats.builtin import register_builtin_formats
from trl_sft_kit.formats.conversion import convert_row
from trl_sft_kit.formats.detect import Detection, RunnerUp, detect_format
from trl_sft_kit.formats.preference import PREFERENCE_FORMAT
from trl_sft_kit.formats.protocol import (
    CANONICAL_KINDS,
    FormatDetector,
    FormatMatch,
    FormatOptions,
    RowExcludedError,
)
from trl_sft_kit.formats.registry import (
    ENTRY_POINT_GROUP,
    available_formats,
    format_names,
    format_registration,
    get_format,
    register_format,
    unregister_format,
)

register_builtin_formats()

__all__ = [
    "CANONICAL_KINDS",
    "ENTRY_POINT_GROUP",
    "PREFERENCE_FORMAT",
    "Detection",
    "FormatDetector",
    "FormatMatch",
    "FormatOptions",
    "RowExcludedError",
    "RunnerUp",
    "available_formats",
    "convert_row",
    "detect_format",
    "format_names",
    "format_registration",
    "get_format",
    "register_format",
    "unregister_format",
]
