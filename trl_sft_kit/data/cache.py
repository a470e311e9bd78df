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

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.cache_root import CACHE_ENV, DATA_CACHE_FOLDER, cache_turned_off, kit_cache_root
from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.settings import settings_of
from trl_sft_kit.specs import DatasetSpec, InlineRows, json_key, spec_to_dict

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.pipeline import PreparedData
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
    "load",
    "lookup",
    "store",
    "tokenizer_fingerprint",
]


AUTO_MIN_BYTES = 1 << 20
"""With ``cache()`` left unset, file sources are cached from this many bytes on (smaller ones are quicker to
prepare than to load)."""

ENTRY_FORMAT = 2
"""The layout of an entry; a change makes every older entry a miss (2: meta holds the data's digests)."""

PRIVATE_MODE = 0o700
"""The cache folder and each entry are the user's alone: nobody else can read or plant prepared data."""

_log = logging.getLogger(__name__)

_META = "meta.json"
_CODE = ("data", "formats", "packing", "tokenizer.py", "specs")
"""The kit's modules whose source is part of the key."""


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
    from trl_sft_kit.data.pipeline import data_seed, max_length_of

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
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


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


def load(entry: CacheEntry) -> PreparedData | None:
    """The prepared data of a hit, or None when the entry cannot be trusted (it is then prepared again).

    The entry is checked before it is used: every data file it was stored with is there, with the SHA-256
    recorded at store time and no file added, and the datasets read back have the columns and row counts
    recorded. Any difference is logged as a warning naming the entry and what differed.
    """
    from datasets import load_from_disk

    from trl_sft_kit.data.pipeline import PreparedData

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
        with _quiet():
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
                digests[path.relative_to(folder).as_posix()] = _file_sha256(path)
    return digests


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        with _quiet():
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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars from ``datasets`` while an entry is written or read."""
    import datasets

    was_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()


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
