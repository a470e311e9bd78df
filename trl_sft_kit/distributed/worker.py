"""One launched process: ``trl-sft-kit train`` with the output of every process but the main one silenced.

``python -m trl_sft_kit.distributed RECIPE [--set KEY=VALUE ...]`` runs ``main`` (the package's
``__main__``); ``launch`` starts one such process per device.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from trl_sft_kit.distributed.environment import world_size
from trl_sft_kit.errors import SFTKitError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """One launched process: ``trl-sft-kit train`` with its arguments, quiet unless it is the main process.

    The main process (rank 0) says how many processes took part; the others print nothing to stdout
    (their errors still reach stderr, marked with their rank).
    """
    import contextlib
    import io

    from trl_sft_kit.cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank == 0:
        print(f"trl-sft-kit: {world_size()} training process(es) started", flush=True)
        return cli_main(["train", *args])
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink):
            return cli_main(["train", *args])
    except SFTKitError as exc:  # pragma: no cover - the CLI prints its own errors
        print(f"error (process {rank}): {exc}", file=sys.stderr)
        return 1
