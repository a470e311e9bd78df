"""Config values checked one by one: types, numbers (``1e-1`` read as one), flags, sections, method calls.

Every error is a ``ConfigError`` naming the config key the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trl_sft_kit.errors import ConfigError, RecipeError


def _expect(value: Any, kinds: type | tuple[type, ...], key: str) -> Any:
    if isinstance(value, bool) and kinds in (int, float, (int, float)):
        raise ConfigError(f"{key!r} must be a number (got {value!r}).", key=key)
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise ConfigError(f"{key!r} must be a {names} (got {type(value).__name__} {value!r}).", key=key)
    return value


def _number(value: Any, key: str, *, whole: bool = False) -> Any:
    """A number from a config; text such as ``1e-1`` (which YAML 1.1 reads as a string) is read as one."""
    wanted = "a whole number" if whole else "a number"
    given = value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{key!r} must be {wanted} (got {given!r}).", key=key) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key!r} must be {wanted} (got {given!r}).", key=key)
    if whole and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{key!r} must be {wanted} (got {given!r}).", key=key)
        value = int(value)
    return value


def _flag(data: Mapping[str, Any], key: str) -> bool:
    """A true/false key that may be missing or null (both mean false)."""
    value = data.get(key)
    return False if value is None else bool(_expect(value, bool, key))


def _first(data: Mapping[str, Any], *keys: str) -> tuple[str, Any]:
    """The first of ``keys`` set to something other than null, and its value; ``(keys[0], None)`` if none."""
    for key in keys:
        if data.get(key) is not None:
            return key, data[key]
    return keys[0], None


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if isinstance(value, str) and key in ("model", "dataset"):
        return {"source": value}
    return dict(_expect(value, Mapping, key))


def _call(method: Any, key: str, *args: Any, keys: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
    """Call a recipe method with config values; its errors become ``ConfigError`` naming the config key.

    ``keys`` maps a spec field (``dropout``) to the config key that set it (``lora_dropout``), so that an
    error about that field names the key the user wrote.
    """
    try:
        return method(*args, **kwargs)
    except ConfigError:
        raise
    except (TypeError, RecipeError) as exc:
        text = str(exc)
        named = next(
            (
                k
                for field, k in (keys or {}).items()
                if text.startswith(repr(field)) or f"option {field!r}" in text
            ),
            key,
        )
        raise ConfigError(f"{named!r}: {exc}", key=named) from None
