"""Where the kit keeps what it caches: one folder, ``$TRL_SFT_KIT_CACHE``, under the Hugging Face cache.

One meaning for the variable: the kit's cache folder. Inside it, ``data/`` holds the preprocessing cache
(``trl_sft_kit.data.cache``) and ``tiny-*`` folders the tiny test models (``trl_sft_kit.testing``); the
value ``off`` (or ``0``, ``false``, ``no``, ``none``) turns the preprocessing cache off. Unset, the folder
is ``$HF_HOME/trl_sft_kit``, where ``HF_HOME`` defaults to ``$XDG_CACHE_HOME/huggingface`` and that to
``~/.cache/huggingface``: the rule huggingface_hub and datasets follow. Nothing here imports anything heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "DATA_CACHE_FOLDER", "cache_turned_off", "kit_cache_root"]

CACHE_ENV = "TRL_SFT_KIT_CACHE"
"""The kit's cache folder; ``off`` (``0``, ``false``, ``no``, ``none``) turns the preprocessing cache off."""

DATA_CACHE_FOLDER = "data"
"""The preprocessing cache's folder inside the kit's cache folder."""

_OFF = {"off", "0", "false", "no", "none"}


def cache_turned_off() -> bool:
    """Whether ``$TRL_SFT_KIT_CACHE`` turns the preprocessing cache off."""
    return os.environ.get(CACHE_ENV, "").strip().lower() in _OFF - {""}


def kit_cache_root() -> Path:
    """The kit's cache folder: ``$TRL_SFT_KIT_CACHE`` when it names one, else ``$HF_HOME/trl_sft_kit``.

    >>> import os
    >>> names = ("TRL_SFT_KIT_CACHE", "HF_HOME", "XDG_CACHE_HOME")
    >>> saved = {name: os.environ.pop(name, None) for name in names}
    >>> os.environ["XDG_CACHE_HOME"] = "/srv/cache"
    >>> str(kit_cache_root())
    '/srv/cache/huggingface/trl_sft_kit'
    >>> os.environ["HF_HOME"] = "/srv/hf"
    >>> str(kit_cache_root())
    '/srv/hf/trl_sft_kit'
    >>> os.environ["TRL_SFT_KIT_CACHE"] = "/tmp/kit"
    >>> str(kit_cache_root())
    '/tmp/kit'
    >>> for name, value in saved.items():
    ...     _ = os.environ.pop(name, None) if value is None else os.environ.update({name: value})
    """
    value = os.environ.get(CACHE_ENV, "").strip()
    if value and not cache_turned_off():
        return Path(value).expanduser()
    hf_home = os.environ.get("HF_HOME", "").strip()
    if not hf_home:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
        hf_home = str(Path(xdg) / "huggingface")
    return Path(hf_home).expanduser() / "trl_sft_kit"
