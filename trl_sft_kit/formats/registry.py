"""The registry of dataset formats; built-ins and third-party detectors register the same way."""

from __future__ import annotations

from typing import Any

from trl_sft_kit.errors import PluginError
from trl_sft_kit.formats.protocol import CANONICAL_KINDS, FormatDetector
from trl_sft_kit.plugins import Registration, Registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_formats",
    "format_names",
    "format_registration",
    "get_format",
    "register_format",
    "unregister_format",
]

ENTRY_POINT_GROUP = "trl_sft_kit.formats"


def _check_detector(plugin: Any) -> FormatDetector:
    missing = [name for name in ("name", "canonical", "match", "convert") if not hasattr(plugin, name)]
    if missing:
        raise PluginError(
            f"{plugin!r} is not a format detector: it lacks {', '.join(missing)}. A detector has name, "
            "canonical, match(row, options) and convert(row, options).",
            name=getattr(plugin, "name", None),
        )
    if not callable(plugin.match) or not callable(plugin.convert):
        raise PluginError(
            f"{plugin!r}: match and convert must be methods.", name=getattr(plugin, "name", None)
        )
    if plugin.canonical not in CANONICAL_KINDS:
        raise PluginError(
            f"format {plugin.name!r} converts to {plugin.canonical!r}; canonical must be one of "
            f"{', '.join(CANONICAL_KINDS)}.",
            name=plugin.name,
        )
    detector: FormatDetector = plugin
    return detector


_REGISTRY: Registry[FormatDetector] = Registry("format detector", ENTRY_POINT_GROUP, _check_detector)


def register_format(
    detector: Any, *, provider: str = "user code", replace: bool = False
) -> Registration[FormatDetector]:
    """Add a format detector, so ``format="auto"`` considers it and ``format=<name>`` selects it.

    Raises:
        PluginError: the object lacks part of the protocol, or the name is taken (pass ``replace=True``).
    """
    return _REGISTRY.register(detector, provider=provider, replace=replace)


def unregister_format(name: str) -> None:
    """Remove a detector that user code registered."""
    _REGISTRY.unregister(name)


def get_format(name: str) -> FormatDetector:
    """The detector registered under ``name``; raises PluginError listing the names that exist."""
    return _REGISTRY.get(name)


def format_registration(name: str) -> Registration[FormatDetector]:
    """The registration of ``name``: the detector and the distribution that provided it."""
    return _REGISTRY.registration(name)


def format_names() -> tuple[str, ...]:
    """Names of all available formats, built-ins first, without loading plug-ins."""
    return _REGISTRY.names()


def available_formats() -> tuple[Registration[FormatDetector], ...]:
    """Every detector with the distribution that provided it (loads all plug-ins)."""
    return _REGISTRY.registrations()
