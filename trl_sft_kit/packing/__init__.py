"""Packers: the plug-in point that turns tokenized sequences into rows of at most ``max_length`` tokens.

A packer is any object with a ``name``, a ``crosses_boundaries`` flag (true when a packed row lets one
sequence attend to another, as TRL's ``wrapped`` does) and a ``pack(dataset, max_length=...)`` method
that returns the packed dataset. Packers that TRL's own trainer can apply also carry ``trl_strategy``,
the ``SFTConfig.packing_strategy`` value that does the same work inside ``SFTTrainer``.

The registry is the one list of strategy names: errors, docs and the command line read it from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from trl_sft_kit.errors import PluginError
from trl_sft_kit.plugins import BUILTIN, Registration, Registry

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "Packer",
    "TRLPacker",
    "available_packers",
    "get_packer",
    "packer_names",
    "register_packer",
]


@runtime_checkable
class Packer(Protocol):
    """What a packing strategy provides."""

    name: str
    crosses_boundaries: bool

    def pack(self, dataset: Dataset, *, max_length: int) -> Dataset:
        """Return ``dataset`` (tokenized, with ``input_ids``) packed into rows of at most ``max_length``."""
        ...


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


_REGISTRY: Registry[Packer] = Registry("packer", "trl_sft_kit.packers", _check_packer)


@attrs.frozen
class TRLPacker:
    """A packing strategy carried out by TRL (``trl.data_utils.pack_dataset``)."""

    name: str
    trl_strategy: str
    crosses_boundaries: bool
    description: str

    def pack(self, dataset: Dataset, *, max_length: int) -> Dataset:
        """Pack with TRL's implementation of ``trl_strategy``."""
        from trl.data_utils import pack_dataset

        return pack_dataset(dataset, seq_length=max_length, strategy=self.trl_strategy)


def register_packer(
    packer: Any, *, provider: str = "user code", replace: bool = False
) -> Registration[Packer]:
    """Add a packer to the registry so ``SFTRecipe.packing(name)`` can use it.

    Raises:
        PluginError: the object is not a packer, or its name is already taken.
    """
    return _REGISTRY.register(packer, provider=provider, replace=replace)


def get_packer(name: str) -> Packer:
    """The packer registered under ``name``."""
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


for _packer in (
    TRLPacker(
        "ffd",
        "bfd",
        False,
        "first-fit decreasing; for now carried out by TRL's best-fit decreasing, which is as tight",
    ),
    TRLPacker("bfd", "bfd", False, "TRL's best-fit decreasing; over-long sequences are truncated"),
    TRLPacker("bfd_split", "bfd_split", False, "TRL's best-fit decreasing; over-long sequences are split"),
    TRLPacker(
        "wrapped",
        "wrapped",
        True,
        "TRL's wrapped packing: concatenates and cuts every max_length tokens, "
        "so attention crosses sequences",
    ),
):
    register_packer(_packer, provider=BUILTIN)
