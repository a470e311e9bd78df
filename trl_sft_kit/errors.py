"""The exceptions trl_sft_kit raises, all under one root.

::

    SFTKitError
    ├── RecipeError (ValueError)            an option, or two options together, cannot work
    │   ├── ConfigError                     a config file or dict has an unknown key or a wrong value
    │   ├── OutputExistsError               the output folder holds files: resume, overwrite, or another
    │   └── ResumeError                     resume=True finds no checkpoint, or one of different data
    ├── RunError (ValueError)               a folder is not a training run's output, or another run holds it
    ├── DatasetError (ValueError)           the training data cannot be used as it is
    │   ├── DataSourceError                 the source is missing, empty or unreadable
    │   ├── DatasetFormatError              no format, several formats, or an ambiguous format
    │   └── RowError                        one row is bad: names the file, row and field
    │       └── MediaError                  rows hold images, video or audio the recipe cannot train on
    ├── PluginError (TypeError)             a detector or packer plug-in is malformed or clashes
    └── BackendError (RuntimeError)         TRL, transformers, peft or bitsandbytes failed underneath
        └── MissingDependencyError (ImportError)   an optional package is not installed

Every message says what happened, where, and what to do. Context is kept on the exception as
attributes (``path``, ``row``, ``field``, ``key``) so callers can act on it without parsing text.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendError",
    "ConfigError",
    "DataSourceError",
    "DatasetError",
    "DatasetFormatError",
    "MediaError",
    "MissingDependencyError",
    "OutputExistsError",
    "PluginError",
    "RecipeError",
    "ResumeError",
    "RowError",
    "RunError",
    "SFTKitError",
    "numbered",
]


def numbered(intro: str, problems: list[str] | tuple[str, ...]) -> str:
    """One message for several problems: ``intro``, then one numbered line each (a lone one inline).

    >>> print(numbered("the recipe cannot work", ["no data.", "no model."]))
    the recipe cannot work (2 problems):
      1. no data.
      2. no model.
    """
    if len(problems) == 1:
        return f"{intro}: {problems[0]}"
    lines = [f"  {n}. {problem}" for n, problem in enumerate(problems, 1)]
    return f"{intro} ({len(problems)} problems):\n" + "\n".join(lines)


class SFTKitError(Exception):
    """Root of every error the kit raises on purpose."""


class RecipeError(SFTKitError, ValueError):
    """An option, or a combination of options, cannot work.

    ``problems`` holds one sentence per problem when ``validate()`` found several at once.
    """

    def __init__(self, message: str, *, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


class ConfigError(RecipeError):
    """A config file or mapping has an unknown key or a value of the wrong type."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        path: str | None = None,
        problems: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, problems=problems)
        self.key = key
        self.path = path


class OutputExistsError(RecipeError):
    """The output folder already holds files and ``train()`` was told neither to resume nor to overwrite."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ResumeError(RecipeError):
    """``train(resume=True)`` cannot continue: no checkpoint, or one made from other data or another seed."""

    def __init__(self, message: str, *, path: str, checkpoint: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.checkpoint = checkpoint


class RunError(SFTKitError, ValueError):
    """A folder given as a run's output (``load_result``) is not one, or another live run holds its lock."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DatasetError(SFTKitError, ValueError):
    """The training data cannot be used as it is."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DataSourceError(DatasetError):
    """The data source is missing, empty, of an unknown kind, or unreadable."""


class DatasetFormatError(DatasetError):
    """No known format matches the rows, several do, or the rows mix formats."""


class RowError(DatasetError):
    """One row cannot be trained on; names the file, the row (0-based) or line (1-based) and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row: int | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        elif row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, path=path)
        self.row = row
        self.line = line
        self.field = field
        self.reason = message


class MediaError(RowError):
    """Rows hold images, videos or audio (or their ``<image>`` markers) that the recipe cannot train on.

    Raised for the first such row, before any format is detected; ``.dataset(..., media="drop")`` leaves the
    media out instead (counted and reported).
    """


class PluginError(SFTKitError, TypeError):
    """A format detector or packer plug-in is malformed, fails to load, or clashes with another."""

    def __init__(self, message: str, *, name: str | None = None, provider: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.provider = provider


class BackendError(SFTKitError, RuntimeError):
    """A library underneath (TRL, transformers, peft, bitsandbytes) failed; the cause is chained."""


class MissingDependencyError(BackendError, ImportError):
    """An optional package the recipe needs is not installed; the message names the extra to install."""

    def __init__(self, message: str, *, package: str, extra: str | None = None, **kwargs: Any) -> None:
        super().__init__(message)
        self.package = package
        self.extra = extra
