"""One run at a time in an output folder: an exclusive lock file held for the whole of ``train()``.

The lock is ``<output_dir>/.trl_sft_kit.lock``, created atomically (``O_CREAT | O_EXCL``) and holding the
owner's pid, host and start time as JSON. It is removed when the run ends, also on an error or Ctrl-C.
A lock left by a process that no longer runs on this host (a killed run) is stale: it is replaced, with a
log line. A lock held by a live process, or by one on another host (whose liveness cannot be checked),
refuses the second run with a ``RunError`` naming the owner.

Nothing here imports torch, transformers or TRL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trl_sft_kit.errors import RunError

__all__ = ["LOCK_FILE", "check_unlocked", "holding_lock", "lock_owner"]

LOCK_FILE = ".trl_sft_kit.lock"
"""The lock file's name inside the output folder."""

_logger = logging.getLogger("trl_sft_kit")


def lock_owner(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The owner recorded in ``folder``'s lock (``pid``, ``host``, ``started``), or None without a lock.

    A lock file that cannot be read as a record (being written at this moment, or damaged) gives ``{}``.
    """
    path = Path(folder) / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _stale(owner: dict[str, Any]) -> bool:
    """Whether the lock's owner is known to be gone: same host, and its pid no longer runs."""
    pid = owner.get("pid")
    return owner.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def _refusal(folder: Path, owner: dict[str, Any]) -> RunError:
    lock = str(folder / LOCK_FILE)
    if owner:
        who = f"process {owner.get('pid')!r} on host {owner.get('host')!r} (started {owner.get('started')!r})"
    else:
        who = "a process whose lock record cannot be read"
    return RunError(
        f"output_dir {str(folder)!r} is in use by another training run: {who} holds its lock {lock!r}. "
        "Wait for that run to end, or choose another output_dir. If no such run is alive (a run on "
        "another host that was killed), delete the lock file and try again.",
        path=str(folder),
    )


def check_unlocked(folder: str | os.PathLike[str]) -> None:
    """Raise ``RunError`` when a live run holds ``folder``'s lock (a stale lock is no obstacle).

    Called before anything loads, so that a second run into a busy folder is refused at once.
    """
    folder = Path(folder).expanduser()
    owner = lock_owner(folder)
    if owner is not None and not _stale(owner) and owner.get("pid") != os.getpid():
        raise _refusal(folder, owner)


def _take(folder: Path) -> Path:
    path = folder / LOCK_FILE
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
    for _ in range(2):  # a second try after removing a stale lock
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = lock_owner(folder)
            if owner is None:  # released between the two calls
                continue
            if not _stale(owner):
                raise _refusal(folder, owner) from None
            _logger.warning(
                "replacing the stale lock %s left by process %s on %s (started %s), which no longer runs",
                path,
                owner.get("pid"),
                owner.get("host"),
                owner.get("started"),
            )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(record, stream)
        return path
    raise _refusal(folder, lock_owner(folder) or {})


@contextlib.contextmanager
def holding_lock(folder: str | os.PathLike[str], *, enabled: bool = True) -> Iterator[Path | None]:
    """Hold ``folder``'s lock for the ``with`` block (creating the folder); removed on leaving, however.

    Args:
        folder: the run's output folder.
        enabled: False on every process of a distributed run but the main one (which holds it for all).

    Raises:
        RunError: another live run holds the lock.
    """
    if not enabled:
        yield None
        return
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    path = _take(folder)
    try:
        yield path
    finally:
        owner = lock_owner(folder)
        if owner is not None and owner.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
