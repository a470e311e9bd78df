"""Whether each training source can be found, told cheaply for ``validate()``: no data is read.

A local path must exist, as a folder or a regular file (a named pipe is refused, never opened). A hub
dataset id is only checked when the hub cannot be reached anyway (offline mode, ``HF_HUB_OFFLINE`` or
``HF_DATASETS_OFFLINE``): it must then be in the local cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from trl_sft_kit.specs import DatasetSpec

__all__ = ["hub_offline", "in_local_cache", "source_problems"]

_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """Whether offline mode is on for the hub or for ``datasets``."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _cache_roots() -> tuple[Path, Path]:
    home = Path(os.environ.get("HF_HOME", Path("~/.cache/huggingface").expanduser())).expanduser()
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub")).expanduser()
    data = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets")).expanduser()
    return hub, data


def in_local_cache(dataset_id: str) -> bool:
    """Whether the hub dataset ``dataset_id`` has been downloaded to the hub or ``datasets`` cache."""
    hub, data = _cache_roots()
    flat = dataset_id.replace("/", "--")
    return (hub / f"datasets--{flat}").is_dir() or (data / dataset_id.replace("/", "___")).is_dir()


def _one(source: object, what: str) -> str | None:
    from trl_sft_kit.data.file_kinds import not_regular
    from trl_sft_kit.data.sources import _looks_like_path

    if not isinstance(source, str):
        return None
    path = Path(source).expanduser()
    if path.exists():
        return not_regular(path)
    if _looks_like_path(source):
        return (
            f"{what} {source!r} does not exist (relative paths are read from {os.getcwd()}). Check the path, "
            "or pass a hub dataset id."
        )
    if hub_offline() and not in_local_cache(source):
        return (
            f"{what.replace(' path', '')} {source!r} is not a local path, and as a hub id it is not in the "
            "local hub cache while offline mode is on "
            "(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE); download it while online, or give a local file."
        )
    return None


def source_problems(specs: Iterable[DatasetSpec]) -> list[tuple[str, str]]:
    """``(source, sentence)`` for every training or evaluation source that cannot be found."""
    problems = []
    for spec in specs:
        for source, what in ((spec.source, "dataset path"), (spec.eval, "evaluation dataset path")):
            problem = _one(source, what)
            if problem is not None:
                problems.append((str(source), problem))
    return problems
