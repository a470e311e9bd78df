"""The chat templates bundled with the installed ``trl`` package, found and read without importing it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["bundled_chat_template", "bundled_chat_template_names"]


def _trl_chat_templates_dir() -> Path:
    spec = importlib.util.find_spec("trl")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("The `trl` package is not installed, so its bundled chat templates are unavailable.")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "chat_templates"
        if candidate.is_dir():
            return candidate
    raise ValueError("The installed `trl` package does not ship a `chat_templates/` folder.")


def bundled_chat_template_names() -> tuple[str, ...]:
    """List the chat templates shipped inside the installed ``trl`` package (without importing it).

    Returns:
        Sorted template names, i.e. the stems of ``trl/chat_templates/*.jinja``
        (for example ``"llama3"``, ``"qwen2_5"``, ``"qwen2_5_training"``).
    """
    return tuple(sorted(p.stem for p in _trl_chat_templates_dir().glob("*.jinja")))


def bundled_chat_template(name: str) -> str:
    """Return the Jinja text of a chat template bundled with ``trl`` (``trl/chat_templates/<name>.jinja``).

    Args:
        name: Template name, e.g. ``"qwen2_5"`` or ``"llama3"``; a trailing ``.jinja`` is accepted.

    Returns:
        The template source.

    Raises:
        ValueError: If no such template exists; the message lists the available names.
    """
    stem = name[: -len(".jinja")] if name.endswith(".jinja") else name
    directory = _trl_chat_templates_dir()
    path = directory / f"{stem}.jinja"
    if "/" in stem or "\\" in stem or not path.is_file():
        available = ", ".join(bundled_chat_template_names())
        raise ValueError(f"Unknown trl chat template {name!r}. Available templates: {available}.")
    return path.read_text(encoding="utf-8")


def _is_raw_template(chat_template: str) -> bool:
    return "{%" in chat_template or "{{" in chat_template


def _resolve_template(chat_template: str | None) -> str | None:
    if chat_template is None:
        return None
    if _is_raw_template(chat_template):
        return chat_template
    return bundled_chat_template(chat_template)
