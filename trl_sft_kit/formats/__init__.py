"""Dataset formats: the ``FormatDetector`` plug-in point, its registry, the built-ins and detection."""

from trl_sft_kit.formats.builtin import register_builtin_formats
from trl_sft_kit.formats.detect import Detection, detect_format
from trl_sft_kit.formats.protocol import CANONICAL_KINDS, FormatDetector, FormatMatch, FormatOptions
from trl_sft_kit.formats.registry import (
    ENTRY_POINT_GROUP,
    available_formats,
    format_names,
    get_format,
    register_format,
    unregister_format,
)

register_builtin_formats()

__all__ = [
    "CANONICAL_KINDS",
    "ENTRY_POINT_GROUP",
    "Detection",
    "FormatDetector",
    "FormatMatch",
    "FormatOptions",
    "available_formats",
    "detect_format",
    "format_names",
    "get_format",
    "register_format",
    "unregister_format",
]
