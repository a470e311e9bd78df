"""A small registry for plug-ins, shared by format detectors and packers.

Built-ins register through ``Registry.register``, the same call a third-party package makes; packages
can also declare entry points (``[project.entry-points."trl_sft_kit.formats"]``), which are listed by
name on the registry's first use (never at import) and loaded lazily, the first time a plug-in of that
name or the whole set is asked for. Each registration remembers which distribution provided it. Two
plug-ins of one name are an error, an import failure is rewrapped with the plug-in's name (every time it
is asked for, not only the first), and ``TRL_SFT_KIT_DISABLE_PLUGINS`` turns entry points off (``1`` for
all, or a comma-separated list of plug-in names).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import metadata
from typing import Any, Generic, TypeVar

import attrs

from trl_sft_kit.errors import PluginError

__all__ = ["DISABLE_ENV", "Registration", "Registry"]

T = TypeVar("T")

DISABLE_ENV = "TRL_SFT_KIT_DISABLE_PLUGINS"
BUILTIN = "trl_sft_kit (built-in)"


@attrs.frozen
class Registration(Generic[T]):
    """One registered plug-in: its name, the object, and the distribution that provided it."""

    name: str
    plugin: T = attrs.field(eq=False)
    provider: str

    def __repr__(self) -> str:
        return f"<{type(self.plugin).__name__} {self.name!r} from {self.provider}>"


def _disabled_names() -> tuple[bool, frozenset[str]]:
    raw = os.environ.get(DISABLE_ENV, "").strip()
    if raw.lower() in ("1", "true", "yes", "all"):
        return True, frozenset()
    return False, frozenset(name.strip() for name in raw.split(",") if name.strip())


class Registry(Generic[T]):
    """Plug-ins of one kind, keyed by name; see the module docstring for the rules."""

    def __init__(self, kind: str, group: str, check: Callable[[Any], T]) -> None:
        self.kind = kind
        self.group = group
        self._check = check
        self._entries: dict[str, Registration[T]] = {}
        self._pending: dict[str, metadata.EntryPoint] | None = None
        self._overrides: set[str] = set()

    # -- registering -------------------------------------------------------------------------------

    def register(self, plugin: Any, *, provider: str = "user code", replace: bool = False) -> Registration[T]:
        """Check ``plugin`` and add it; all-or-nothing: a failed check leaves the registry unchanged.

        Registering does not look at entry points (so importing the kit never does); a name that an
        installed package also declares is reported when the registry is first used, unless it was
        registered with ``replace=True``.

        Raises:
            PluginError: the plug-in is malformed, or its name is taken and ``replace`` is false.
        """
        checked = self._check(plugin)
        name = getattr(checked, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"a {self.kind} needs a non-empty string 'name' (got {name!r}).", provider=provider
            )
        existing = self._entries.get(name)
        owner = existing.provider if existing is not None else self._pending_provider(name)
        if owner and (existing is not None or owner != provider) and not replace:
            raise PluginError(
                f"a {self.kind} named {name!r} is already registered by {owner}; choose another name, "
                "or pass replace=True to override it on purpose.",
                name=name,
                provider=provider,
            )
        registration = Registration(name=name, plugin=checked, provider=provider)
        self._entries[name] = registration
        if replace:
            self._overrides.add(name)
        if self._pending is not None:
            self._pending.pop(name, None)
        return registration

    def unregister(self, name: str) -> None:
        """Remove a plug-in (tests and interactive sessions use this to undo a registration)."""
        self._entries.pop(name, None)
        self._overrides.discard(name)

    # -- looking up --------------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        """Every available name, registered or declared by an entry point, in registration order."""
        self._discover()
        pending = tuple(self._pending or ())
        return tuple(self._entries) + tuple(name for name in pending if name not in self._entries)

    def get(self, name: str) -> T:
        """The plug-in called ``name``, loading its entry point if needed.

        Raises:
            PluginError: no plug-in has that name (the message lists those that exist).
        """
        return self.registration(name).plugin

    def registration(self, name: str) -> Registration[T]:
        """The registration record of ``name``, with its provider."""
        self._discover()
        if name not in self._entries and self._pending and name in self._pending:
            self._load(name)
        if name not in self._entries:
            listed = ", ".join(map(repr, self.names())) or "none"
            raise PluginError(f"there is no {self.kind} named {name!r}; available: {listed}.", name=name)
        return self._entries[name]

    def registrations(self) -> tuple[Registration[T], ...]:
        """Every registration, loading all pending entry points first."""
        self._discover()
        for name in list(self._pending or ()):
            self._load(name)
        return tuple(self._entries.values())

    # -- entry points --------------------------------------------------------------------------------

    def _discover(self) -> None:
        """List the group's entry points once, on first use; a clash raises now and on every later use."""
        if self._pending is not None:
            return
        all_off, off = _disabled_names()
        pending: dict[str, metadata.EntryPoint] = {}
        if not all_off:
            for entry in metadata.entry_points(group=self.group):
                if entry.name in off or entry.name in self._overrides:
                    continue
                provider = _provider(entry)
                if entry.name in pending and _provider(pending[entry.name]) != provider:
                    raise PluginError(
                        f"two packages declare a {self.kind} named {entry.name!r} "
                        f"({_provider(pending[entry.name])} and {provider}); uninstall one, or set "
                        f"{DISABLE_ENV}={entry.name} to ignore both.",
                        name=entry.name,
                        provider=provider,
                    )
                existing = self._entries.get(entry.name)
                if existing is not None:
                    raise PluginError(
                        f"{provider} declares a {self.kind} named {entry.name!r}, but {existing.provider} "
                        f"already provides one; uninstall or update that package, or set "
                        f"{DISABLE_ENV}={entry.name} to ignore its entry point.",
                        name=entry.name,
                        provider=provider,
                    )
                pending[entry.name] = entry
        self._pending = pending

    def _pending_provider(self, name: str) -> str:
        entry = (self._pending or {}).get(name)
        return _provider(entry) if entry is not None else ""

    def _load(self, name: str) -> None:
        """Import one entry point and register what it names; on failure it stays pending, to fail again."""
        assert self._pending is not None
        entry = self._pending[name]
        provider = _provider(entry)
        try:
            loaded = entry.load()
            plugin = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:
            raise PluginError(
                f"the {self.kind} {name!r} from {provider} failed to load ({type(exc).__name__}: {exc}); "
                f"fix or uninstall that package, or set {DISABLE_ENV}={name} to skip it.",
                name=name,
                provider=provider,
            ) from exc
        if getattr(plugin, "name", None) != name:
            raise PluginError(
                f"the entry point {name!r} of {provider} loads a {self.kind} named "
                f"{getattr(plugin, 'name', None)!r}; the two names must match.",
                name=name,
                provider=provider,
            )
        try:
            self.register(plugin, provider=provider)
        except PluginError as exc:
            raise PluginError(
                f"the entry point {name!r} of {provider} is unusable: {exc} Fix or uninstall that package, "
                f"or set {DISABLE_ENV}={name} to skip it.",
                name=name,
                provider=provider,
            ) from exc


def _provider(entry: metadata.EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    if dist is None:
        return f"entry point {entry.value}"
    return f"{dist.metadata['Name']} {dist.version}"
