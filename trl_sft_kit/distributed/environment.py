"""What a training process finds around it: how many processes take part, what ``accelerate launch`` set
up, and whether the backend a recipe asks for is installed."""

from __future__ import annotations

import importlib.util
import os

from trl_sft_kit.errors import MissingDependencyError
from trl_sft_kit.specs import DistributedSpec

__all__ = ["launched_plugin", "require_backend", "world_size"]


def world_size() -> int:
    """How many processes take part in this run (``WORLD_SIZE``, set by torchrun and accelerate), else 1."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def launched_plugin() -> str | None:
    """``"fsdp"`` or ``"deepspeed"`` when ``accelerate launch`` set it up from its own configuration."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "deepspeed"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    return None


def require_backend(spec: DistributedSpec | None) -> None:
    """Refuse, before anything loads, a DeepSpeed recipe on a machine without the ``deepspeed`` package.

    Raises:
        MissingDependencyError: naming ``pip install deepspeed`` and the other ways out.
    """
    if spec is None or not spec.is_deepspeed:
        return
    try:
        found = importlib.util.find_spec("deepspeed") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingDependencyError(
            f"distributed({spec.kind!r}) needs the 'deepspeed' package, which is not installed. Install it "
            "with pip install deepspeed (on a machine with CUDA and its compiler), or choose "
            "distributed('fsdp'), which needs nothing more than PyTorch.",
            package="deepspeed",
        )
