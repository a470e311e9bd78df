"""Which files of a data folder are read, told by ``stat`` alone: nothing is opened to decide.

A data folder may hold links. One that stays inside the folder is read; one that leaves it
(``secrets.txt -> /etc/passwd``) is never followed, and neither is a link to nothing. A named pipe, a device
or a socket is not a regular file: opening a pipe blocks until something writes to it and a device may never
end, so such a file is left out of a folder, and refused when it is given as the data itself. Every file
left out is named, logged as a warning and noted in the dataset report.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["data_files", "file_kind", "left_out_note", "left_out_reason", "not_regular"]

logger = logging.getLogger(__name__)


def left_out_reason(path: Path, root: Path) -> str | None:
    """Why a data file in the folder ``root`` (resolved) is not read, or ``None``: a link out of the folder
    (never followed), a link that leads nowhere, or not a regular file (a named pipe would block the read,
    a device may never end). Only ``stat`` is called: nothing is opened."""
    if path.is_symlink():
        target = Path(os.path.realpath(path))  # the whole chain of links; never raises on a loop
        if not target.is_relative_to(root):
            return f"{path} is a link to {target}, outside the folder"
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # a link to nothing, or a loop of links
        return f"{path} is a link that leads to no file ({exc.strerror})"
    if not stat.S_ISREG(mode):
        return f"{path} is not a regular file: it is {file_kind(mode)}"
    return None


def file_kind(mode: int) -> str:
    """What a path that is not a regular file or folder is, in words: ``a named pipe``."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def not_regular(path: Path) -> str | None:
    """Why an existing path given as data is neither a folder nor a regular file, or ``None``.

    ``stat`` only, so a named pipe is never opened (opening one blocks until something writes to it).
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return (
        f"dataset path {str(path)!r} is not a regular file: it is {file_kind(mode)}, which the kit does not "
        "open. Write the data to a file (or a folder of files) and point .dataset() at it."
    )


def data_files(folder: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """The files of a folder and below with one of ``suffixes``, in path order, and a sentence for each
    one left out.

    Hidden files and folders, and files of other types, are passed over without a word. A data file that
    is a link leaving the folder (``secrets.txt -> /etc/passwd``), a link to nothing, or not a regular file
    (a named pipe, a device) is left out, named in the sentences, and logged as a warning; so is a link to
    a folder outside. Links to files that stay inside the folder are read; links to folders are never
    followed (a folder inside is read where it really is).
    """
    root = folder.resolve()
    files: list[Path] = []
    left_out: list[str] = []
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if hidden:
            continue
        if path.is_dir():
            target = Path(os.path.realpath(path))
            if path.is_symlink() and not target.is_relative_to(root):
                left_out.append(f"{path} is a link to the folder {target}, outside the folder")
            continue  # a folder inside is walked where it really is
        if path.suffix.lower() not in suffixes:
            continue
        reason = left_out_reason(path, root)
        if reason is None:
            files.append(path)
        else:
            left_out.append(reason)
    if left_out:
        logger.warning("%s", left_out_note(folder, left_out))
    return files, left_out


def left_out_note(folder: Path, left_out: list[str]) -> str:
    """One sentence for the report and the log: how many paths of ``folder`` were not read, and why."""
    shown = "; ".join(left_out[:5]) + (f"; and {len(left_out) - 5} more" if len(left_out) > 5 else "")
    count = f"{len(left_out)} path{'s' if len(left_out) > 1 else ''}"
    return f"{count} in {folder} not read: {shown}"
