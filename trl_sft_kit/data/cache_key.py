"""The preprocessing cache's key: a SHA-256 over everything the prepared rows depend on.

The source data (each file's size and SHA-256, a folder's files one by one, in-memory rows, a
``datasets.Dataset``'s fingerprint), the data part of the recipe, the tokenizer (its whole serialised
model, chat template and special tokens), and the kit (its version, the source of the modules that prepare
data, the plug-ins registered, the versions of ``transformers`` and ``tokenizers``). See
``trl_sft_kit.data.cache``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl_sft_kit.data.provenance import file_sha256
from trl_sft_kit.data.settings import data_seed, max_length_of, settings_of
from trl_sft_kit.specs import DatasetSpec, InlineRows, json_key, spec_to_dict

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.settings import DataSettings, SupportsDataSettings

__all__ = ["ENTRY_FORMAT", "cache_key", "key_parts", "tokenizer_fingerprint"]

ENTRY_FORMAT = 2
"""The layout of an entry; a change makes every older entry a miss (2: meta holds the data's digests)."""

_CODE = ("data", "formats", "packing", "tokenizer.py", "specs")
"""The kit's modules whose source is part of the key."""


class _UncacheableError(Exception):
    """A source whose content cannot be fingerprinted."""


# ------------------------------------------------------------------------------------------ key


def cache_key(settings: DataSettings | SupportsDataSettings, tokenizer: PreTrainedTokenizerBase) -> str:
    """The SHA-256 key of the prepared data of ``recipe`` with ``tokenizer`` (see the module docstring)."""
    settings = settings_of(settings)
    return _digest(key_parts(settings, tokenizer))


def key_parts(
    settings: DataSettings | SupportsDataSettings, tokenizer: PreTrainedTokenizerBase
) -> dict[str, Any]:
    """Everything the key covers, as plain data (for debugging a miss)."""
    settings = settings_of(settings)

    packing = None
    if settings.packing_spec is not None:
        from trl_sft_kit.packing import available_packers

        packing = {
            **spec_to_dict(settings.packing_spec),
            "packer": _registration(available_packers(), settings.packing_spec.strategy),
        }
    return {
        "entry_format": ENTRY_FORMAT,
        "kit": {"version": _version("trl-sft-kit"), "code": _kit_code()},
        "libraries": {name: _version(name) for name in ("transformers", "tokenizers")},
        "formats": _format_registrations(),
        "sources": [_source_part(spec) for spec in settings.dataset_specs],
        "recipe": {
            "loss": spec_to_dict(settings.loss_spec),
            "max_length": max_length_of(settings),
            "packing": packing,
            "seed": data_seed(settings),
            "shuffle": bool(settings.training_fields.get("shuffle_dataset", False)),
            "tokens": spec_to_dict(settings.tokens_spec),
        },
        "tokenizer": tokenizer_fingerprint(tokenizer),
    }


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """What the tokenizer's output depends on: its serialised model, chat template and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        model = _sha256(backend.to_str().encode())
    else:  # a slow tokenizer: its vocabulary and added tokens
        model = _sha256(json_key(sorted(tokenizer.get_vocab().items())).encode())
    added = {str(index): str(token) for index, token in sorted(tokenizer.added_tokens_decoder.items())}
    return {
        "class": type(tokenizer).__name__,
        "model": model,
        "added_tokens": _sha256(json_key(added).encode()),
        "chat_template": _sha256(json_key(tokenizer.chat_template).encode()),
        "special_tokens": {key: str(value) for key, value in tokenizer.special_tokens_map.items()},
        "eos": tokenizer.eos_token,
        "pad": tokenizer.pad_token,
        "bos": tokenizer.bos_token,
        "padding_side": getattr(tokenizer, "padding_side", None),
        "add_bos_token": getattr(tokenizer, "add_bos_token", None),
        "add_eos_token": getattr(tokenizer, "add_eos_token", None),
    }


def _source_part(spec: DatasetSpec) -> dict[str, Any]:
    options = {key: value for key, value in spec_to_dict(spec).items() if key not in ("source", "eval")}
    part: dict[str, Any] = {"options": options, "data": _fingerprint(spec.source, spec)}
    if spec.holds_out:
        part["eval"] = spec.eval
    elif spec.eval is not None:
        part["eval"] = _fingerprint(spec.eval, spec)
    return part


def _fingerprint(source: Any, spec: DatasetSpec) -> dict[str, Any]:
    """The content of one source, as sizes and digests."""
    if isinstance(source, InlineRows):
        return {"inline_rows": _sha256(json_key(list(source)).encode())}
    if isinstance(source, str):
        path = Path(source).expanduser()
        if path.is_file():
            return {"file": str(path.resolve()), **_file_digest(path)}
        if path.is_dir():
            files = [
                {"path": str(file.relative_to(path)), **_file_digest(file)} for file in _data_files(path)
            ]
            return {"folder": str(path.resolve()), "files": files}
        return {"hub": source, "split": spec.split, "fingerprint": _hub_fingerprint(source, spec)}
    datasets = sys.modules.get("datasets")
    if datasets is not None and isinstance(source, datasets.DatasetDict) and spec.split in source:
        source = source[spec.split]
    fingerprint = getattr(source, "_fingerprint", None)
    if not fingerprint:
        raise _UncacheableError(f"a {type(source).__name__} has no fingerprint to key the cache on")
    return {"dataset": str(fingerprint)}


def _hub_fingerprint(name: str, spec: DatasetSpec) -> str:
    import datasets

    try:
        table = datasets.load_dataset(name, spec.config, split=spec.split, revision=spec.revision)
        return str(table._fingerprint)
    except Exception as exc:
        raise _UncacheableError(
            f"the hub dataset {name!r} could not be fingerprinted ({type(exc).__name__})"
        ) from exc


def _data_files(folder: Path) -> list[Path]:
    from trl_sft_kit.data.sources import _is_data_file

    return sorted(path for path in folder.rglob("*") if _is_data_file(path, folder))


def _file_digest(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


_KIT_CODE: str | None = None


def _kit_code() -> str:
    """A digest of the source of the modules that prepare data (computed once per process)."""
    global _KIT_CODE
    if _KIT_CODE is None:
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for name in _CODE:
            target = root / name
            files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
            for file in files:
                digest.update(str(file.relative_to(root)).encode())
                digest.update(file.read_bytes())
        _KIT_CODE = digest.hexdigest()
    return _KIT_CODE


def _format_registrations() -> list[list[str]]:
    from trl_sft_kit.formats import available_formats

    return [_describe(registration) for registration in available_formats()]


def _registration(registrations: Any, name: str) -> list[str] | None:
    for registration in registrations:
        if registration.name == name:
            return _describe(registration)
    return None


def _describe(registration: Any) -> list[str]:
    plugin = registration.plugin
    kind = type(plugin)
    provider = str(registration.provider)
    shown = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(plugin))[:200]  # no addresses: the key must not vary
    return [str(registration.name), provider, f"{kind.__module__}.{kind.__qualname__}", shown]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest(parts: Mapping[str, Any]) -> str:
    return _sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode())


# ------------------------------------------------------------------------------------------ entries
