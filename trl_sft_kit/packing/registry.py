"""The registry of packers; built-ins and third-party packers register the same way."""

from __future__ import annotations

from typing import Any

from trl_sft_kit.errors import PluginError
from trl_sft_kit.packing.protocol import Packer
from trl_sft_kit.plugins import BUILTIN, Registration, Registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_packers",
    "get_packer",
    "packer_names",
    "register_builtin_packers",
    "register_packer",
    "unregister_packer",
]

ENTRY_POINT_GROUP = "trl_sft_kit.packers"


def _check_packer(plugin: Any) -> Packer:
    missing = [attr for attr in ("name", "crosses_boundaries", "pack") if not hasattr(plugin, attr)]
    if missing or not callable(getattr(plugin, "pack", None)):
        raise PluginError(
            f"{plugin!r} is not a packer: it lacks {', '.join(missing) or 'a callable pack()'}; "
            "a packer has name, crosses_boundaries and pack(dataset, max_length=...).",
            name=getattr(plugin, "name", None),
        )
    packer: Packer = plugin
    return packer


_REGISTRY: Registry[Packer] = Registry("packer", ENTRY_POINT_GROUP, _check_packer)


def register_packer(
    packer: Any, *, provider: str = "user code", replace: bool = False
) -> Registration[Packer]:
    """Add a packer to the registry so ``SFTRecipe.packing(name)`` can use it.

    Raises:
        PluginError: the object is not a packer, or its name is already taken.
    """
    return _REGISTRY.register(packer, provider=provider, replace=replace)


def get_packer(name: str) -> Packer:
    """The packer registered under ``name``; raises PluginError listing the names that exist."""
    return _REGISTRY.get(name)


def packer_names() -> tuple[str, ...]:
    """The names of every available packer, built-ins first."""
    return _REGISTRY.names()


def available_packers() -> tuple[Registration[Packer], ...]:
    """Every packer with the distribution that provided it."""
    return _REGISTRY.registrations()


def unregister_packer(name: str) -> None:
    """Remove a packer registered by user code."""
    _REGISTRY.unregister(name)


def register_builtin_packers() -> None:
    """Register the built-in packers through the same call third-party packages use."""
    from trl_sft_kit.packing.packers import BUILTIN_PACKERS

    for packer in BUILTIN_PACKERS:
        register_packer(packer, provider=BUILTIN)
