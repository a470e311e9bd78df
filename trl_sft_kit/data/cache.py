"""The preprocessing cache: converted, tokenized (and packed) data kept on disk for the next ``compile()``.

An entry is keyed by a SHA-256 over everything the prepared rows depend on:

* the source data: each file's size and SHA-256 (a folder's files one by one), the rows of in-memory
  data, a ``datasets.Dataset``'s fingerprint (a hub dataset's, once ``datasets`` has loaded it);
* the data part of the recipe: every source's options (format, columns, weight, count, eval, ...), the
  loss, ``max_length``, packing, the seed, ``tokens()``;
* the tokenizer: its whole serialised model (vocabulary, merges, normaliser, added tokens), chat template,
  special tokens, eos / pad / bos and padding side;
* the kit: its version and the source of the modules that prepare data (so an edited checkout does not
  reuse data prepared by other code), the format and packer plug-ins registered, and the versions of
  ``transformers`` and ``tokenizers``.

A change to any of them is a miss, and the data is prepared again: a cache keyed on the data alone once
reused rows tokenized with another tokenizer and silently tripled a loss. An entry holds the datasets
(``Dataset.save_to_disk``) and the reports (``meta.json``); it is written to a temporary folder and renamed
into place, so a reader never sees half an entry and two processes may write the same one.

Where: ``data/`` inside the kit's cache folder (``$TRL_SFT_KIT_CACHE``, default ``$HF_HOME/trl_sft_kit``;
see ``trl_sft_kit.cache_root``); ``TRL_SFT_KIT_CACHE=off`` turns the cache off. The recipe's ``cache()``
chooses per recipe; by default file and hub sources of at least ``AUTO_MIN_BYTES`` are cached, in-memory
data never. ``clear_cache()`` empties it, and never touches the tiny test models kept beside it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.cache_root import CACHE_ENV, DATA_CACHE_FOLDER, cache_turned_off, kit_cache_root
from trl_sft_kit.data.cache_key import (
    ENTRY_FORMAT,
    _data_files,
    _UncacheableError,
    cache_key,
    key_parts,
    tokenizer_fingerprint,
)
from trl_sft_kit.data.provenance import file_sha256
from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.settings import settings_of
from trl_sft_kit.datasets_bars import datasets_bars_off

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.prepared import PreparedData
    from trl_sft_kit.data.settings import DataSettings, SupportsDataSettings

__all__ = [
    "AUTO_MIN_BYTES",
    "CACHE_ENV",
    "CacheEntry",
    "CacheStatus",
    "cache_dir",
    "cache_key",
    "clear_cache",
    "enabled_for",
    "key_parts",
    "load",
    "lookup",
    "store",
    "tokenizer_fingerprint",
]


AUTO_MIN_BYTES = 1 << 20
"""With ``cache()`` left unset, file sources are cached from this many bytes on (smaller ones are quicker to
prepare than to load)."""


PRIVATE_MODE = 0o700
"""The cache folder and each entry are the user's alone: nobody else can read or plant prepared data."""

_log = logging.getLogger(__name__)

_META = "meta.json"


@attrs.frozen
class CacheStatus:
    """What the cache did for one ``compile()``.

    Attributes:
        state: ``"hit"`` (prepared data loaded), ``"miss"`` (prepared, then stored), or ``"off"``.
        reason: why, in a few words.
        key: the entry's key, when the cache was consulted.
        path: the entry's folder, when there is one.
    """

    state: str
    reason: str
    key: str | None = None
    path: str | None = None

    @property
    def hit(self) -> bool:
        """Whether the prepared data came from the cache."""
        return self.state == "hit"

    def summary(self) -> str:
        """One line: ``preprocessing cache: hit (...)``."""
        where = f", {self.path}" if self.path else ""
        return f"preprocessing cache: {self.state} ({self.reason}{where})"


@attrs.frozen
class CacheEntry:
    """Where one recipe's prepared data is (or would be) kept, and the status of the lookup."""

    status: CacheStatus
    folder: Path | None = None
    replace: bool = False
    """Whether an unreadable entry is in the way and must be replaced."""


def cache_dir() -> Path | None:
    """The preprocessing cache's folder, or None when ``$TRL_SFT_KIT_CACHE`` turns the cache off."""
    if cache_turned_off():
        return None
    return kit_cache_root() / DATA_CACHE_FOLDER


def clear_cache() -> int:
    """Delete every entry of the preprocessing cache; returns how many there were.

    Only entries (and half-written ones) are deleted: the tiny test models beside the cache, and anything
    else in the folder, are left alone.
    """
    root = cache_dir()
    if root is None or not root.is_dir():
        return 0
    entries = [path for path in root.iterdir() if path.is_dir() and _is_entry_name(path.name)]
    for path in entries:
        shutil.rmtree(path, ignore_errors=True)
    return len(entries)


def _is_entry_name(name: str) -> bool:
    """An entry's folder (its SHA-256 key) or a half-written one (``.tmp-<hex>``)."""
    key = name.removeprefix(".tmp-")
    return len(key) in (32, 64) and all(char in "0123456789abcdef" for char in key)


def lookup(
    settings: DataSettings | SupportsDataSettings, tokenizer: PreTrainedTokenizerBase, *, broken: bool = False
) -> CacheEntry:
    """Decide whether the cache applies to ``recipe`` and find its entry.

    ``broken=True`` says an entry was found but could not be read: it is then prepared again and replaced.
    """
    settings = settings_of(settings)
    root = cache_dir()
    if root is None:
        return CacheEntry(CacheStatus("off", f"${CACHE_ENV} turns it off"))
    enabled, why = _decision(settings)
    if not enabled:
        return CacheEntry(CacheStatus("off", why))
    try:
        key = cache_key(settings, tokenizer)
    except _UncacheableError as exc:
        return CacheEntry(CacheStatus("off", str(exc)))
    folder = root / key
    if broken:
        status = CacheStatus("miss", "the entry failed its checks or could not be read", key, str(folder))
        return CacheEntry(status, folder, replace=True)
    if (folder / _META).is_file():
        return CacheEntry(CacheStatus("hit", "prepared data reused", key, str(folder)), folder)
    if folder.exists():  # a folder without its meta is no entry: prepared again and put in its place
        status = CacheStatus("miss", "the entry is incomplete (no meta.json)", key, str(folder))
        return CacheEntry(status, folder, replace=True)
    return CacheEntry(
        CacheStatus("miss", "no entry for this data, recipe and tokenizer", key, str(folder)), folder
    )


def _decision(settings: DataSettings) -> tuple[bool, str]:
    if settings.cache_enabled is False:
        return False, "cache(False)"
    if settings.cache_enabled is True:
        return True, "cache(True)"
    size = 0
    for spec in settings.dataset_specs:
        source = spec.source
        if not isinstance(source, str):
            return False, "in-memory data is not cached unless cache(True)"
        path = Path(source).expanduser()
        if path.is_file():
            size += path.stat().st_size
        elif path.is_dir():
            size += sum(file.stat().st_size for file in _data_files(path))
        else:
            return True, "a hub dataset"
    if size < AUTO_MIN_BYTES:
        return False, f"sources under {AUTO_MIN_BYTES // (1 << 20)} MiB are not cached unless cache(True)"
    return True, "sources of at least 1 MiB"


def enabled_for(settings: DataSettings | SupportsDataSettings) -> bool:
    """Whether ``compile()`` uses the cache for ``recipe`` (settings only: no data is read or hashed)."""
    settings = settings_of(settings)
    if cache_dir() is None or any(spec.streaming for spec in settings.dataset_specs):
        return False
    return _decision(settings)[0]


def load(entry: CacheEntry) -> PreparedData | None:
    """The prepared data of a hit, or None when the entry cannot be trusted (it is then prepared again).

    The entry is checked before it is used: every data file it was stored with is there, with the SHA-256
    recorded at store time and no file added, and the datasets read back have the columns and row counts
    recorded. Any difference is logged as a warning naming the entry and what differed.
    """
    from datasets import load_from_disk

    from trl_sft_kit.data.prepared import PreparedData

    folder = entry.folder
    if folder is None:
        return None
    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _untrusted(folder, f"its meta.json cannot be read ({exc})")
        return None
    if not isinstance(meta, dict) or meta.get("entry_format") != ENTRY_FORMAT:
        _untrusted(folder, "it was written by another version of the kit", quiet=True)
        return None
    problem = _file_problem(folder, meta.get("files"))
    if problem is not None:
        _untrusted(folder, problem)
        return None
    try:
        with datasets_bars_off():
            dataset = load_from_disk(str(folder / "train"))
            eval_dataset = load_from_disk(str(folder / "eval")) if meta.get("has_eval") else None
        problem = _shape_problem("train", dataset, meta.get("train_shape")) or (
            _shape_problem("eval", eval_dataset, meta.get("eval_shape")) if eval_dataset is not None else None
        )
        if problem is not None:
            _untrusted(folder, problem)
            return None
        return PreparedData(
            dataset,
            [],
            _dataset_report(meta["report"]),
            _tokenization(meta["tokenization"]),
            _packing(meta.get("packing")),
            meta.get("eos_token"),
            eval_dataset=eval_dataset,
            eval_tokenization=_optional(_tokenization, meta.get("eval_tokenization")),
            eval_packing=_packing(meta.get("eval_packing")),
            mixture=_optional(_mixture, meta.get("mixture")),
            cache=entry.status,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's errors are ValueErrors
        _untrusted(folder, f"it cannot be read back ({type(exc).__name__}: {exc})")
        return None


def _untrusted(folder: Path, why: str, *, quiet: bool = False) -> None:
    """Log why the entry at ``folder`` is not used; the caller prepares the data again and replaces it."""
    (_log.info if quiet else _log.warning)(
        "preprocessing cache: the entry %s is not used, because %s; the data is prepared again and the "
        "entry replaced.",
        folder,
        why,
    )


def _entry_files(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of an entry's datasets (``train/``, ``eval/``), by path relative to it."""
    digests = {}
    for part in ("train", "eval"):
        for path in sorted((folder / part).rglob("*")):
            if path.is_file():
                digests[path.relative_to(folder).as_posix()] = file_sha256(path)
    return digests


def _file_problem(folder: Path, recorded: Any) -> str | None:
    """What differs between the entry's files and the digests recorded when it was stored, or None."""
    if not isinstance(recorded, dict) or not recorded:
        return "its meta.json records no digests of its data"
    found = _entry_files(folder)
    missing = sorted(set(recorded) - set(found))
    added = sorted(set(found) - set(recorded))
    changed = sorted(name for name in set(recorded) & set(found) if recorded[name] != found[name])
    for what, names in (("missing", missing), ("not written by the kit", added), ("changed", changed)):
        if names:
            return f"its data file {names[0]} is {what}" + (
                f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            )
    return None


def _shape(dataset: Any) -> dict[str, Any]:
    return {"columns": list(dataset.column_names), "rows": len(dataset)}


def _shape_problem(part: str, dataset: Any, recorded: Any) -> str | None:
    """What differs between a dataset read back and the columns and rows recorded for it, or None."""
    if not isinstance(recorded, dict):
        return f"its meta.json records no columns or row count for {part}"
    shape = _shape(dataset)
    if shape["columns"] != recorded.get("columns"):
        return f"its {part} data has the columns {shape['columns']}, not {recorded.get('columns')}"
    if shape["rows"] != recorded.get("rows"):
        return f"its {part} data has {shape['rows']} rows, not {recorded.get('rows')}"
    return None


def store(entry: CacheEntry, data: PreparedData) -> CacheStatus:
    """Write ``data`` as the entry (atomically) and return the status to report.

    A failure to write (a full disk, a read-only folder) is reported in the status, never raised: the
    data is prepared and training goes on.
    """
    folder = entry.folder
    if folder is None or entry.status.state == "off":
        return entry.status
    staging = folder.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        _private_folder(folder.parent)
        staging.mkdir(mode=PRIVATE_MODE)
        os.chmod(staging, PRIVATE_MODE)  # whatever the umask
        with datasets_bars_off():
            data.dataset.save_to_disk(str(staging / "train"))
            if data.eval_dataset is not None:
                data.eval_dataset.save_to_disk(str(staging / "eval"))
        meta = {
            "entry_format": ENTRY_FORMAT,
            "has_eval": data.eval_dataset is not None,
            "eos_token": data.eos_token,
            "report": attrs.asdict(data.report),
            "tokenization": attrs.asdict(data.tokenization),
            "packing": attrs.asdict(data.packing) if data.packing is not None else None,
            "eval_tokenization": _asdict(data.eval_tokenization),
            "eval_packing": _asdict(data.eval_packing),
            "mixture": _asdict(data.mixture),
            "files": _entry_files(staging),
            "train_shape": _shape(data.dataset),
            "eval_shape": _shape(data.eval_dataset) if data.eval_dataset is not None else None,
        }
        (staging / _META).write_text(json.dumps(meta, ensure_ascii=False, default=str), encoding="utf-8")
        if folder.exists():
            if not entry.replace:  # another process stored the same entry meanwhile
                shutil.rmtree(staging, ignore_errors=True)
                return attrs.evolve(entry.status, reason="prepared; another process stored it meanwhile")
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(staging, folder)
        except OSError:  # another process renamed its copy into place first: same key, same content
            shutil.rmtree(staging, ignore_errors=True)
        return attrs.evolve(entry.status, state="miss", reason="prepared and stored")
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        return attrs.evolve(entry.status, state="miss", reason=f"prepared; could not be stored ({exc})")


def _private_folder(root: Path) -> None:
    """Create the cache folder as the user's alone (``PRIVATE_MODE``), and make an existing one so."""
    root.mkdir(mode=PRIVATE_MODE, parents=True, exist_ok=True)
    if root.stat().st_mode & 0o777 != PRIVATE_MODE:
        os.chmod(root, PRIVATE_MODE)


def _asdict(value: Any) -> Any:
    return attrs.asdict(value) if value is not None else None


def _optional(read: Any, value: Any) -> Any:
    return read(value) if value is not None else None


def _skipped(rows: list[dict[str, Any]]) -> tuple[SkippedRow, ...]:
    return tuple(SkippedRow(**row) for row in rows)


def _dataset_report(data: dict[str, Any]) -> DatasetReport:
    return DatasetReport(**{**data, "skipped": _skipped(data["skipped"]), "notes": tuple(data["notes"])})


def _tokenization(data: dict[str, Any]) -> Any:
    from trl_sft_kit.data.tokenize import TokenizationReport

    return TokenizationReport(**{**data, "skipped": _skipped(data["skipped"])})


def _packing(data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    from trl_sft_kit.packing import PackingReport

    return PackingReport(**data)


def _mixture(data: dict[str, Any]) -> Any:
    from trl_sft_kit.data.mixture import MixtureReport, SourceShare

    sources = tuple(SourceShare(**source) for source in data["sources"])
    return MixtureReport(**{**data, "sources": sources})
