"""Packers: the plug-in point that turns tokenized sequences into rows of at most ``max_length`` tokens.

A packer is any object with a ``name``, a ``crosses_boundaries`` flag (true when a packed row lets one
sequence attend to another, as TRL's ``wrapped`` does) and a ``pack(dataset, *, max_length, overflow=None)``
method returning ``PackResult(dataset, report)``. Packers that TRL's own trainer can apply also carry
``trl_strategy``, the ``SFTConfig.packing_strategy`` value that does the same work inside ``SFTTrainer``.

Built-ins: ``ffd`` (the kit's global first-fit decreasing, ``FFDPacker``; its core is the pure function
``ffd_assign``), and TRL's ``bfd``, ``bfd_split`` and ``wrapped`` (``TRLPacker``). ``pack(dataset, name,
max_length=...)`` runs any of them; ``pack_table`` is the Arrow-level core of ``ffd``.

The registry is the one list of strategy names: errors, docs and the command line read it from here.
"""

from trl_sft_kit.packing.ffd import ffd_assign, ffd_order
from trl_sft_kit.packing.packers import FFDPacker, TRLPacker, observed_report, pack
from trl_sft_kit.packing.protocol import OVERFLOW_MODES, Overflow, Packer, PackResult
from trl_sft_kit.packing.registry import (
    ENTRY_POINT_GROUP,
    available_packers,
    get_packer,
    packer_names,
    register_builtin_packers,
    register_packer,
    unregister_packer,
)
from trl_sft_kit.packing.report import PackingReport
from trl_sft_kit.packing.rows import pack_table

register_builtin_packers()

__all__ = [
    "ENTRY_POINT_GROUP",
    "OVERFLOW_MODES",
    "FFDPacker",
    "Overflow",
    "PackResult",
    "Packer",
    "PackingReport",
    "TRLPacker",
    "available_packers",
    "ffd_assign",
    "ffd_order",
    "get_packer",
    "observed_report",
    "pack",
    "pack_table",
    "packer_names",
    "register_packer",
    "unregister_packer",
]
