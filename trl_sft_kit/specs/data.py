"""``DatasetSpec`` and ``InlineRows``: one data source (a path, hub id, rows in memory or a loaded
dataset) and how it is read, converted, weighted and held out."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from trl_sft_kit.errors import RecipeError
from trl_sft_kit.specs.values import (
    FrozenMapping,
    _freeze_optional_mapping,
    _number,
    _one_of,
    _optional_count,
    _optional_str,
    of_type,
    thaw,
)


class InlineRows(tuple):
    """Rows given in memory as a list of dicts: a tuple of frozen rows, equal and hashed by content.

    Being frozen, the rows cannot change, so their SHA-256 (``sha256()``, the source's provenance) is worked
    out once.
    """

    _sha256: str

    def __new__(cls, rows: Iterable[Mapping[str, Any]]) -> InlineRows:
        frozen = []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise RecipeError(f"dataset row {index} must be a dict (got {type(row).__name__}).")
            frozen.append(FrozenMapping(row))
        return super().__new__(cls, frozen)

    def to_list(self) -> list[dict[str, Any]]:
        """The rows as plain, mutable dicts."""
        return [thaw(row) for row in self]

    def sha256(self) -> str:
        """The SHA-256 of the rows as canonical JSON (sorted keys), computed on the first call."""
        known = self.__dict__.get("_sha256")
        if known is None:
            text = json.dumps(self.to_list(), sort_keys=True, ensure_ascii=False, default=str)
            known = self.__dict__["_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        return known

    def __repr__(self) -> str:
        return f"<{len(self)} inline rows>"


def _is_hf_dataset(value: Any) -> bool:
    datasets = sys.modules.get("datasets")
    if datasets is None:
        return False
    return isinstance(value, (datasets.Dataset, datasets.IterableDataset, datasets.DatasetDict))


def _dataset_source(value: Any) -> Any:
    if isinstance(value, (InlineRows, str)) or _is_hf_dataset(value):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return InlineRows(value)
    raise RecipeError(
        f"dataset source must be a file or folder path, a hub dataset id, a datasets.Dataset or a list of "
        f"dicts (got {type(value).__name__})."
    )


def _eval_source(value: Any) -> Any:
    """``None``, a fraction or count of rows to hold out, or a separate evaluation source."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecipeError(
            f"'eval' must be a fraction (0.05), a number of rows (500) or a dataset (got {value!r})."
        )
    if isinstance(value, (int, float)):
        return value
    return _dataset_source(value)


def _check_eval(_instance: Any, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, float) and not 0.0 < value < 1.0:
        raise RecipeError(
            f"'eval' as a fraction must be > 0 and < 1 (got {value!r}); give a whole number for a count of "
            "rows, or a dataset."
        )
    if isinstance(value, int) and not isinstance(value, bool) and value < 1:
        raise RecipeError(f"'eval' as a number of rows must be >= 1 (got {value!r}).")
    if isinstance(value, InlineRows) and not value:
        raise RecipeError("the evaluation data is an empty list; give at least one row.")
    if isinstance(value, str) and not value.strip():
        raise RecipeError("the evaluation data path is empty; pass a file, a folder, a hub id or rows.")


def _optional_number(*, gt: float) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    check = _number(gt=gt)

    def optional(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            check(instance, attribute, value)

    return optional


@attrs.frozen(repr=False)
class DatasetSpec:
    """Training data and how to read it.

    ``format`` is ``"auto"`` (detect) or a registered format name; ``columns`` renames the source's
    fields onto the format's names before detection (``{"question": "instruction"}``).

    In a mixture (``SFTRecipe.mix``), ``weight`` is the source's share of the mixed rows and ``count`` an
    exact number of rows (either may exceed the source, which is then repeated); neither means every row,
    once. ``eval`` holds out a fraction (``0.05``) or a number of rows (``500``) for evaluation, or names a
    separate evaluation set (read with the same options). ``streaming`` reads the source lazily while
    training (``datasets.IterableDataset``) instead of preparing it all first. ``media`` says what to do
    with images, videos and audio in the rows (``trl_sft_kit.data.media``): ``"auto"`` refuses them for a
    text-only model, ``"drop"`` leaves them out (counted and reported), ``"text"`` keeps ``<image>``-style
    markers as ordinary text.
    """

    source: Any = attrs.field(converter=_dataset_source)
    format: str = attrs.field(default="auto", validator=of_type(str))
    split: str = attrs.field(default="train", validator=of_type(str))
    text_field: str = attrs.field(default="text", validator=of_type(str))
    columns: FrozenMapping | None = attrs.field(default=None, converter=_freeze_optional_mapping)
    on_bad_rows: str = attrs.field(default="error", validator=_one_of("error", "skip"))
    weight: float | None = attrs.field(default=None, validator=_optional_number(gt=0))
    count: int | None = attrs.field(default=None, validator=_optional_count)
    eval: Any = attrs.field(default=None, converter=_eval_source, validator=_check_eval)
    streaming: bool = attrs.field(default=False, validator=of_type(bool))
    media: str = attrs.field(default="auto", validator=_one_of("auto", "drop", "text"))
    special_tokens_in_text: str = attrs.field(
        default="warn", validator=_one_of("warn", "keep", "error", "escape")
    )
    """A tokenizer's special token in a row's own text (``trl_sft_kit.data.text_checks``): ``"warn"`` keeps
    it and logs a warning with the count and first rows, ``"keep"`` keeps it quietly, ``"error"`` refuses
    the row (``RowError``), ``"escape"`` encodes it as plain text."""
    config: str | None = attrs.field(default=None, validator=_optional_str)
    """A hub dataset's configuration (subset) name: ``load_dataset(name, config)``."""
    revision: str | None = attrs.field(default=None, validator=_optional_str)
    """A hub dataset's branch, tag or commit."""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.source, str) and not self.source.strip():
            raise RecipeError("the dataset path is empty; pass a file, a folder, a hub id or a list of rows.")
        if isinstance(self.source, InlineRows) and not self.source:
            raise RecipeError("the dataset is an empty list; give at least one row.")
        for old, new in (self.columns or {}).items():
            if not isinstance(new, str) or not new:
                raise RecipeError(f"columns maps {old!r} to {new!r}; map each source field to a field name.")
        if self.weight is not None and self.count is not None:
            raise RecipeError(
                f"weight={self.weight!r} and count={self.count!r} both size this source; give one of them."
            )
        if self.streaming and self.count is not None:
            raise RecipeError(
                f"count={self.count!r} with streaming=True: a stream's length is not known in advance; give "
                "a weight instead, or read the source whole (streaming=False)."
            )
        if self.streaming and isinstance(self.eval, float):
            raise RecipeError(
                f"eval={self.eval!r} with streaming=True: a fraction of a stream of unknown length cannot be "
                "held out; give a number of rows (taken from the start of the stream) or a separate dataset."
            )

    @property
    def holds_out(self) -> bool:
        """Whether ``eval`` is a fraction or number of this source's rows (not a separate set)."""
        return isinstance(self.eval, (int, float)) and not isinstance(self.eval, bool)

    def eval_set(self) -> DatasetSpec:
        """The separate evaluation set ``eval`` names, as a source read with this source's options (no
        evaluation, weight or count of its own)."""
        return attrs.evolve(self, source=self.eval, eval=None, weight=None, count=None)

    @property
    def is_serialisable(self) -> bool:
        """Whether ``to_dict`` can write this source (a path/id or inline rows, not a Dataset object)."""
        writable = (str, InlineRows)
        return isinstance(self.source, writable) and (
            self.eval is None or self.holds_out or isinstance(self.eval, writable)
        )

    def __repr__(self) -> str:
        if isinstance(self.source, (str, InlineRows)):
            parts = [repr(self.source)]
        else:
            parts = [f"<{type(self.source).__name__}>"]
        defaults = attrs.fields_dict(DatasetSpec)
        for name in _DATASET_REPR_FIELDS:
            value = getattr(self, name)
            if value is defaults[name].default or value == defaults[name].default:
                continue
            plain = isinstance(value, (str, int, float, InlineRows, FrozenMapping))
            parts.append(f"{name}={value!r}" if plain else f"{name}=<{type(value).__name__}>")
        return f"DatasetSpec({', '.join(parts)})"


_DATASET_REPR_FIELDS = (
    "format",
    "split",
    "text_field",
    "columns",
    "on_bad_rows",
    "weight",
    "count",
    "eval",
    "streaming",
    "special_tokens_in_text",
    "config",
    "revision",
)
