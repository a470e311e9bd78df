"""Provenance of the data a run trains on: each source's own SHA-256, taken when the data stage reads it.

``source_fingerprints`` hashes each source (a file's bytes, a folder's data files one by one, inline rows as
canonical JSON, a ``datasets.Dataset``'s own fingerprint); the data stage takes them before it reads the
sources and again after, and refuses data that changed in between (``check_unchanged``), so the digests
that ``run.json`` records are those of the bytes that were parsed and keyed, not of the file as it is later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trl_sft_kit.errors import DataSourceError
from trl_sft_kit.specs import DatasetSpec, InlineRows

__all__ = ["check_unchanged", "file_sha256", "source_fingerprints"]


def source_fingerprints(specs: Iterable[DatasetSpec]) -> tuple[dict[str, Any], ...]:
    """Each source's fingerprint (plain data, for ``run.json``), the ``dataset()`` one first."""
    return tuple(_source_fingerprint(spec) for spec in specs)


def check_unchanged(before: tuple[dict[str, Any], ...], after: tuple[dict[str, Any], ...]) -> None:
    """Refuse data whose sources changed while they were read (``before`` and ``after`` the read).

    Raises:
        DataSourceError: naming the file (or folder) that changed.
    """
    for old, new in zip(before, after, strict=True):
        if old != new:
            where = str(old.get("path") or old.get("id") or old.get("kind"))
            raise DataSourceError(
                f"{where} changed while it was read for training: the rows read may mix the old and the new "
                "content. Wait until whatever writes it is done, then compile again.",
                path=where,
            )


def _source_fingerprint(spec: DatasetSpec) -> dict[str, Any]:
    source = spec.source
    if isinstance(source, InlineRows):
        return {"kind": "inline rows", "sha256": source.sha256()}
    if isinstance(source, str):
        path = Path(source).expanduser()
        if path.is_file() and spec.streaming:  # read as a stream because it is big: not read twice
            return {"kind": "file", "path": str(path), "sha256": None, "bytes": path.stat().st_size}
        if path.is_file():
            return {"kind": "file", "path": str(path), "sha256": file_sha256(path)}
        if path.is_dir() and not spec.streaming:
            from trl_sft_kit.data.sources import SUPPORTED_SUFFIXES

            files = sorted(
                file
                for file in path.rglob("*")
                if file.is_file()
                and file.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in file.relative_to(path).parts)
            )
            return {
                "kind": "folder",
                "path": str(path),
                "files": {file.relative_to(path).as_posix(): file_sha256(file) for file in files},
            }
        if path.is_dir():  # streamed
            return {"kind": "folder", "path": str(path), "files": None}
        return {"kind": "hub", "id": source, "split": spec.split}
    own = getattr(source, "_fingerprint", None)  # a datasets.Dataset knows its own
    return {"kind": type(source).__name__, "fingerprint": own if isinstance(own, str) else None}


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes, read a megabyte at a time (hex digits)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
