"""What the ``trl-sft-kit`` command shows on the console, and the log file that takes the rest.

The console shows the kit's own lines (its summary of what is trained, the loss, where files went), the
progress bars that matter (data preparation, training) and warnings about the user's run. What the
libraries underneath write that says nothing about the run goes to a log file instead, never dropped:

- log records of other libraries (bitsandbytes' and ``kernels``' lines about ``kernels-community`` and
  offline mode, transformers' "Token indices sequence length is longer than ..."), below ERROR;
- ``DeprecationWarning`` / ``FutureWarning`` / ``PendingDeprecationWarning`` (``is_gradient_checkpointing``
  is deprecated, ...): about the libraries' own APIs, not the run;
- transformers' own progress bars ("Loading weights", "Writing model shards").

The log ends up in the run's output folder as ``trl_sft_kit.log`` once the run has made it (the kit never
writes into a folder that is not a run's); until then it is a file in the temporary folder, and for a
command without an output folder (``inspect``) it stays there as ``trl_sft_kit-<command>.log``, replaced
by the next such command. Its place is named at the end. ``--verbose`` or ``TRL_SFT_KIT_VERBOSE=1`` leaves the
console as the libraries set it (the log file is still written).

Nothing here imports torch, transformers or TRL at module level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

__all__ = ["LOG_FILE", "VERBOSE_ENV", "Console", "CurrentStderrHandler", "quiet_console", "verbose_requested"]

LOG_FILE = "trl_sft_kit.log"
"""The name of the library log in a run's output folder."""

VERBOSE_ENV = "TRL_SFT_KIT_VERBOSE"
"""Set to ``1`` to show the libraries' messages on the console too."""

NOISE = (DeprecationWarning, FutureWarning, PendingDeprecationWarning)
"""Warning categories about the libraries' own APIs, not about the run: sent to the log file only."""

_KIT = "trl_sft_kit"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def verbose_requested(flag: bool = False) -> bool:
    """``flag`` (``--verbose``), or ``TRL_SFT_KIT_VERBOSE`` set to ``1`` / ``true`` / ``yes`` / ``on``."""
    return flag or os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class _Console(logging.Filter):
    """Lets onto the console the kit's records and the libraries' errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] == _KIT or record.levelno >= logging.ERROR


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (notebooks and pytest replace it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class Console:
    """The routing of one command; ``output_dir`` says where the log file goes at the end.

    Attributes:
        log_path: the file the libraries' messages are written to while the command runs.
        verbose: whether they are shown on the console as well.
        output_dir: the run's output folder, set by the command once it knows it.
        where: where the log is once the command is over (None when nothing was written to it).
    """

    def __init__(self, *, verbose: bool, prefix: str = "run") -> None:
        self.verbose = verbose
        self.prefix = prefix
        self.output_dir: Path | None = None
        self.where: Path | None = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        handle, name = tempfile.mkstemp(prefix=f"trl_sft_kit-{prefix}-{stamp}-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)
        self._stream: TextIO = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._file = logging.StreamHandler(self._stream)
        self._file.setFormatter(logging.Formatter(_FORMAT))
        self._undo: list[Any] = []

    # ------------------------------------------------------------------------------------- routing

    def start(self) -> None:
        """Route Python logging, warnings and transformers' progress bars (undone by ``close``)."""
        from trl_sft_kit.compile import run_logger

        run_logger()  # the kit's own console handler first: it is added only to a logger without handlers
        root = logging.getLogger()
        root.addHandler(self._file)
        self._undo.append(lambda: root.removeHandler(self._file))
        kit = logging.getLogger(_KIT)
        kit.addHandler(self._file)
        self._undo.append(lambda: kit.removeHandler(self._file))
        console = CurrentStderrHandler()  # with a handler on the root, logging's last resort is silent
        if not self.verbose:
            console.addFilter(_Console())  # only a library's error still reaches the console
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
        self._undo.append(lambda: root.removeHandler(console))
        self._route_library_loggers()
        previous = warnings.showwarning
        warnings.showwarning = self._show_warning
        self._undo.append(lambda: setattr(warnings, "showwarning", previous))
        filters = warnings.filters[:]
        warnings.simplefilter("default", FutureWarning)  # each shown (to the log) once per place
        self._undo.append(lambda: setattr(warnings, "filters", filters))

    def _route_library_loggers(self) -> None:
        """transformers and datasets log through console handlers of their own: into the file instead.

        Both are imported first, since each sets its handler up on import.
        """
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as hf_logging

            hf_logging.add_handler(self._file)
            self._undo.append(lambda: hf_logging.remove_handler(self._file))
            if not self.verbose:
                hf_logging.disable_default_handler()
                self._undo.append(hf_logging.enable_default_handler)
                if hf_logging.is_progress_bar_enabled():
                    hf_logging.disable_progress_bar()  # "Loading weights", "Writing model shards"
                    self._undo.append(hf_logging.enable_progress_bar)
        with contextlib.suppress(ImportError):
            import datasets.utils.logging  # noqa: F401 - its handler is set up on import

            logger = logging.getLogger("datasets")  # propagates to the root logger, so to the file
            kept = logger.handlers[:]
            if not self.verbose:
                logger.handlers = [h for h in kept if not _writes_to_console(h)]
                self._undo.append(lambda: setattr(logger, "handlers", kept))

    def _show_warning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        self._stream.write(text)
        self._stream.flush()
        if self.verbose or not issubclass(category, NOISE) or _KIT in Path(filename).parts:
            (file or sys.stderr).write(text)

    # ------------------------------------------------------------------------------------- the end

    def close(self) -> Path | None:
        """Undo the routing; move the log into the run's output folder when there is one.

        Returns:
            Where the log is, or None when nothing was written to it (it is then removed).
        """
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._stream.close()
        if self.log_path.stat().st_size == 0:
            self.log_path.unlink()
            return None
        from trl_sft_kit.runs import is_run_folder

        folder = self.output_dir
        if folder is not None and folder.is_dir() and is_run_folder(folder):
            target = folder / LOG_FILE
            with target.open("a", encoding="utf-8") as out, self.log_path.open(encoding="utf-8") as log:
                shutil.copyfileobj(log, out)
            self.log_path.unlink()
            return target
        latest = self.log_path.with_name(f"trl_sft_kit-{self.prefix}.log")  # one per command, replaced
        try:
            os.replace(self.log_path, latest)
        except OSError:  # another user's file: keep this run's own
            return self.log_path
        return latest


def _writes_to_console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return isinstance(handler, logging.StreamHandler) and stream in (sys.stderr, sys.stdout, sys.__stderr__)


@contextlib.contextmanager
def quiet_console(*, verbose: bool = False, prefix: str = "run") -> Iterator[Console]:
    """Route the libraries' messages to a log file for the ``with`` block (see the module docstring).

    The ``Console`` yielded takes the run's ``output_dir`` once it is known; on leaving, the log moves
    there and, when it holds anything, one line on stderr says where it is.

    Example:
        >>> with quiet_console(prefix="doctest") as console:
        ...     logging.getLogger("some.library").warning("noise")
        >>> console.where.name, "noise" in console.where.read_text()
        ('trl_sft_kit-doctest.log', True)
    """
    console = Console(verbose=verbose_requested(verbose), prefix=prefix)
    console.start()
    try:
        yield console
    finally:
        console.where = console.close()
        if console.where is not None:
            print(f"library messages: {console.where}", file=sys.stderr)
