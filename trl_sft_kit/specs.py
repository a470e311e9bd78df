"""Frozen option specs that an ``SFTRecipe`` is made of.

Each spec is a small ``attrs`` frozen class. Field validators check one value (layer 1); a spec's
``__attrs_post_init__`` checks its own fields together (layer 2); ``SFTRecipe.validate`` checks the whole
recipe (layer 3). Converters are idempotent because ``attrs.evolve`` runs them again on every copy.
Nothing here imports torch, transformers, TRL or datasets.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from trl_sft_kit.errors import RecipeError

__all__ = [
    "DISTRIBUTED_KINDS",
    "DatasetSpec",
    "DistributedSpec",
    "FrozenMapping",
    "InlineRows",
    "LoraSpec",
    "LossSpec",
    "ModelSpec",
    "NeftuneSpec",
    "PackingSpec",
    "QuantizationSpec",
    "TokensSpec",
    "freeze",
    "of_type",
    "thaw",
]


class FrozenMapping(Mapping[str, Any]):
    """An immutable, hashable mapping; nested lists become tuples and nested dicts FrozenMappings."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        items = data.items() if isinstance(data, Mapping) else data
        self._data: dict[str, Any] = {str(key): freeze(value) for key, value in items}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(sorted(self._data.items(), key=lambda item: item[0])))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._data)


def freeze(value: Any) -> Any:
    """Return ``value`` made hashable: dicts become FrozenMapping, lists and tuples become tuples."""
    if isinstance(value, FrozenMapping):
        return value
    if isinstance(value, Mapping):
        return FrozenMapping(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """Undo ``freeze``: FrozenMapping becomes dict, tuples become lists (for YAML, JSON and TRL)."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [thaw(item) for item in value]
    if isinstance(value, frozenset):
        return sorted(thaw(item) for item in value)
    return value


def _freeze_mapping(value: Mapping[str, Any] | None) -> FrozenMapping:
    return value if isinstance(value, FrozenMapping) else FrozenMapping(value or {})


def _freeze_optional_mapping(value: Mapping[str, Any] | None) -> FrozenMapping | None:
    return None if value is None else _freeze_mapping(value)


def _one_of(*choices: Any) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            raise RecipeError(f"{attribute.name!r} must be one of {listed} (got {value!r}).")

    return check


def _number(
    *, gt: float | None = None, ge: float | None = None, le: float | None = None, lt: float | None = None
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{attribute.name!r} must be a number (got {value!r}).")
        if not math.isfinite(value):
            raise RecipeError(f"{attribute.name!r} must be a finite number (got {value!r}).")
        bounds = [("gt", gt, value > (gt or 0)), ("ge", ge, value >= (ge or 0))]
        bounds += [("le", le, value <= (le or 0)), ("lt", lt, value < (lt or 0))]
        signs = {"gt": ">", "ge": ">=", "le": "<=", "lt": "<"}
        for name, bound, holds in bounds:
            if bound is not None and not holds:
                raise RecipeError(f"{attribute.name!r} must be {signs[name]} {bound} (got {value!r}).")

    return check


def of_type(*kinds: type) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """A field validator: the value is an instance of one of ``kinds`` (a bool is not taken for a number).

    Raises ``RecipeError`` with the field named, e.g. ``'r' must be an int (got 'abc')``, where
    ``attrs.validators.instance_of`` would raise a ``TypeError`` whose text is a tuple.
    """
    names = " or ".join("an int" if kind is int else f"a {kind.__name__}" for kind in kinds)

    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise RecipeError(f"{attribute.name!r} must be {names} (got {value!r}).")

    return check


def _optional_str(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise RecipeError(f"{attribute.name!r} must be a non-empty string or None (got {value!r}).")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------- model


def _is_loaded_object(value: Any) -> bool:
    return value is not None and not isinstance(value, (str, os.PathLike))


def _model_source(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


_MODEL_OWN = {
    "dtype": ".model(..., dtype=...)",
    "torch_dtype": ".model(..., dtype=...)",
    "attn_implementation": ".model(..., attn_implementation=...)",
    "trust_remote_code": ".model(..., trust_remote_code=...)",
    "revision": ".model(..., revision=...)",
    "quantization_config": ".quantize()",
    "use_kernels": ".liger()",
}


def _model_init_kwargs(value: Mapping[str, Any] | None) -> FrozenMapping:
    kwargs = _freeze_mapping(value)
    owned = [f"{key!r} (set by {_MODEL_OWN[key]})" for key in kwargs if key in _MODEL_OWN]
    if owned:
        raise RecipeError(f"model keyword argument(s) {', '.join(owned)}: use those instead.")
    return kwargs


@attrs.frozen(repr=False)
class ModelSpec:
    """The base model: a local path or hub id, or an already-loaded ``PreTrainedModel`` with its tokenizer.

    A loaded model is compared and hashed by identity, and is trained in place.
    """

    source: Any = attrs.field(converter=_model_source)
    tokenizer: Any = attrs.field(default=None, converter=_model_source)
    dtype: str = attrs.field(default="auto", validator=_one_of("auto", "float32", "bfloat16", "float16"))
    attn_implementation: str | None = attrs.field(default=None, validator=_optional_str)
    trust_remote_code: bool = attrs.field(default=False, validator=of_type(bool))
    revision: str | None = attrs.field(default=None, validator=_optional_str)
    init_kwargs: FrozenMapping = attrs.field(factory=FrozenMapping, converter=_model_init_kwargs)
    """Further ``from_pretrained`` keyword arguments (``device_map``, ``low_cpu_mem_usage``, ...)."""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.source, str) and not self.source.strip():
            raise RecipeError(
                "the model name or path is empty; pass a local folder, a hub id, or a loaded model."
            )
        if not isinstance(self.source, str) and not _is_loaded_object(self.source):
            raise RecipeError(f"model must be a path, a hub id or a loaded model (got {self.source!r}).")

    @property
    def is_loaded(self) -> bool:
        """Whether the model is an object in memory rather than a name to load."""
        return not isinstance(self.source, str)

    @property
    def name(self) -> str:
        """A readable name: the path or id, or the loaded model's ``name_or_path``."""
        if isinstance(self.source, str):
            return self.source
        config = getattr(self.source, "config", None)
        return str(getattr(config, "_name_or_path", "") or type(self.source).__name__)

    def __repr__(self) -> str:
        parts = [repr(self.name) if not self.is_loaded else f"<loaded {type(self.source).__name__}>"]
        if self.tokenizer is not None:
            shown = _short(self.tokenizer) if isinstance(self.tokenizer, str) else "<loaded>"
            parts.append(f"tokenizer={shown}")
        for name in ("dtype", "attn_implementation", "trust_remote_code", "revision"):
            value = getattr(self, name)
            default = attrs.fields_dict(ModelSpec)[name].default
            if value != default:
                parts.append(f"{name}={value!r}")
        parts += [f"{key}={value!r}" for key, value in self.init_kwargs.items()]
        return f"ModelSpec({', '.join(parts)})"


# --------------------------------------------------------------------------------------------- data


class InlineRows(tuple):
    """Rows given in memory as a list of dicts: a tuple of frozen rows, equal and hashed by content."""

    __slots__ = ()

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


def _optional_count(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RecipeError(f"{attribute.name!r} must be a whole number >= 1 (got {value!r}).")


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


# --------------------------------------------------------------------------------------------- adapters


def _target_modules(value: str | Iterable[str]) -> str | tuple[str, ...]:
    if isinstance(value, str):
        if not value:
            raise RecipeError("'target_modules' must be 'all-linear' or a list of module names (got '').")
        return value
    modules = tuple(value)
    if not modules or not all(isinstance(module, str) and module for module in modules):
        raise RecipeError(f"'target_modules' must be 'all-linear' or a list of module names (got {value!r}).")
    return modules


_LORA_OWN = ("r", "lora_alpha", "lora_dropout", "target_modules", "task_type")


def _lora_options(value: Mapping[str, Any] | None) -> FrozenMapping:
    options = _freeze_mapping(value)
    clashes = [key for key in options if key in _LORA_OWN]
    if clashes:
        raise RecipeError(
            f"LoRA option(s) {', '.join(map(repr, clashes))} are set by lora()'s own arguments "
            "(r, alpha, dropout, target_modules); pass them there."
        )
    from trl_sft_kit.peft_fields import unknown_lora_options

    problems = unknown_lora_options(list(options))
    if problems:
        raise RecipeError(" ".join(problems), problems=tuple(problems))
    return options


@attrs.frozen
class LoraSpec:
    """A LoRA adapter (peft ``LoraConfig``); ``options`` carries any further LoraConfig field."""

    r: int = attrs.field(default=16, validator=[of_type(int), _number(gt=0)])
    alpha: float = attrs.field(default=32, validator=_number(gt=0))
    dropout: float = attrs.field(default=0.05, validator=_number(ge=0.0, lt=1.0))
    target_modules: str | tuple[str, ...] = attrs.field(default="all-linear", converter=_target_modules)
    options: FrozenMapping = attrs.field(factory=FrozenMapping, converter=_lora_options)


def _bits(value: Any) -> int:
    table = {"4bit": 4, "8bit": 8, "4": 4, "8": 8, 4: 4, 8: 8}
    if isinstance(value, bool) or value not in table:
        raise RecipeError(f"quantize() takes '4bit' or '8bit' (got {value!r}).")
    return table[value]


@attrs.frozen
class QuantizationSpec:
    """Load the base model quantized by bitsandbytes: 4-bit (QLoRA, NF4 by default) or 8-bit."""

    bits: int = attrs.field(converter=_bits)
    quant_type: str = attrs.field(default="nf4", validator=_one_of("nf4", "fp4"))
    double_quant: bool = attrs.field(default=True, validator=of_type(bool))
    compute_dtype: str = attrs.field(
        default="auto", validator=_one_of("auto", "bfloat16", "float16", "float32")
    )

    @property
    def mode(self) -> str:
        """``"4bit"`` or ``"8bit"``."""
        return f"{self.bits}bit"


# --------------------------------------------------------------------------------------------- training


def _strategy_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise RecipeError(f"packing strategy must be a name such as 'ffd' (got {value!r}).")
    return value


def _check_strategy(_instance: Any, _attribute: attrs.Attribute[Any], value: str) -> None:
    from trl_sft_kit.packing import packer_names

    names = packer_names()
    if value not in names:
        raise RecipeError(
            f"unknown packing strategy {value!r}; choose one of {', '.join(map(repr, names))}, "
            "or packing(False) to turn packing off."
        )


@attrs.frozen
class PackingSpec:
    """Pack several sequences into each row of ``max_length`` tokens with the named packer.

    ``overflow`` is what happens to a sequence longer than ``max_length``: ``"truncate"`` or ``"split"``
    (``None``: the packer's own default). ``eval`` packs evaluation data too.
    """

    strategy: str = attrs.field(default="ffd", converter=_strategy_name, validator=_check_strategy)
    overflow: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_one_of("truncate", "split"))
    )
    eval: bool = attrs.field(default=True, validator=of_type(bool))


@attrs.frozen
class NeftuneSpec:
    """NEFTune: uniform noise of scale ``alpha / sqrt(length * dim)`` added to the input embeddings."""

    alpha: float = attrs.field(default=5.0, validator=_number(gt=0))


LOSS_MODES = ("auto", "completion_only", "assistant_only", "all", "trl")
"""``auto``: the model's own words (assistant turns, the completion, or all of plain text); ``trl``: TRL's
default (the completion of prompt-completion rows, every token otherwise)."""

LOSS_ROLES = ("assistant", "tool_call", "system", "user", "tool")
"""Message roles ``loss("assistant_only", roles=...)`` can train: ``assistant`` is every assistant turn
(reply, reasoning and tool calls), ``tool_call`` only the assistant turns that call a tool; ``system``,
``user`` and ``tool`` (tool outputs) train those messages' content."""


def _roles(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not value:
        raise RecipeError(f"'roles' must be a non-empty list of names from {LOSS_ROLES} (got {value!r}).")
    unknown = [role for role in value if role not in LOSS_ROLES]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), LOSS_ROLES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(
            f"unknown loss role {unknown[0]!r}{hint}; roles are {', '.join(map(repr, LOSS_ROLES))}. "
            "A ShareGPT 'gpt' turn is 'assistant', 'human' is 'user', 'function_call' is 'tool_call' and "
            "'observation' is 'tool'."
        )
    return tuple(dict.fromkeys(value))


@attrs.frozen
class LossSpec:
    """Which tokens carry loss: ``auto`` trains the model's own words (see ``SFTRecipe.loss``).

    ``turns`` (``"all"`` or ``"last"``) chooses the assistant turns trained under ``assistant_only``, and
    ``roles`` (``LOSS_ROLES``) the messages it trains: ``("assistant",)`` unless told.
    """

    mode: str = attrs.field(default="auto", validator=_one_of(*LOSS_MODES))
    turns: str = attrs.field(default="all", validator=_one_of("all", "last"))
    roles: tuple[str, ...] = attrs.field(default=("assistant",), converter=_roles)

    def __attrs_post_init__(self) -> None:
        if self.turns != "all" and self.mode != "assistant_only":
            raise RecipeError(
                f"turns={self.turns!r} picks assistant turns, so it needs loss('assistant_only', ...) "
                f"(got loss {self.mode!r})."
            )
        if self.roles != ("assistant",) and self.mode != "assistant_only":
            raise RecipeError(
                f"roles={self.roles!r} picks the messages to train, so it needs loss('assistant_only', "
                f"roles=...) (got loss {self.mode!r})."
            )


@attrs.frozen
class TokensSpec:
    """A chat template (bundled name, ``.jinja`` file or tokenizer path) and eos / pad tokens to use."""

    chat_template: str | None = attrs.field(default=None, validator=_optional_str)
    eos: str | None = attrs.field(default=None, validator=_optional_str)
    pad: str | None = attrs.field(default=None, validator=_optional_str)


# --------------------------------------------------------------------------------------------- processes

DISTRIBUTED_KINDS = ("ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3")
"""How several training processes share the work: data parallel, FSDP, or DeepSpeed ZeRO stage 2 or 3."""

DISTRIBUTED_OPTIONS: dict[str, tuple[str, ...]] = {
    "ddp": ("find_unused_parameters", "static_graph", "bucket_cap_mb", "broadcast_buffers"),
    "fsdp": (
        "version",
        "auto_wrap_policy",
        "transformer_layer_cls_to_wrap",
        "min_num_params",
        "cpu_offload",
        "activation_checkpointing",
        "state_dict_type",
        "reshard_after_forward",
        "cpu_ram_efficient_loading",
    ),
    "deepspeed_zero2": ("offload_optimizer", "config"),
    "deepspeed_zero3": ("offload_optimizer", "offload_param", "config"),
}
"""The options each kind takes, besides ``backend`` and ``timeout`` (which every kind takes)."""

_COMMON_DISTRIBUTED_OPTIONS = ("backend", "timeout")


@attrs.frozen
class DistributedSpec:
    """Training in several processes, on one machine or several, under ``accelerate`` or ``torchrun``.

    ``kind`` is one of ``DISTRIBUTED_KINDS``. ``num_processes`` is the number of processes on each machine
    (``None``: one per GPU); ``num_machines`` how many machines take part. ``options`` tune the kind (see
    ``DISTRIBUTED_OPTIONS``); each is checked here, when the recipe is built.
    """

    kind: str = attrs.field(validator=_one_of(*DISTRIBUTED_KINDS))
    num_processes: int | None = attrs.field(default=None, validator=_optional_count)
    num_machines: int = attrs.field(default=1, validator=[of_type(int), _number(ge=1)])
    options: FrozenMapping = attrs.field(factory=FrozenMapping, converter=_freeze_mapping)

    def __attrs_post_init__(self) -> None:
        known = (*DISTRIBUTED_OPTIONS[self.kind], *_COMMON_DISTRIBUTED_OPTIONS)
        unknown = [name for name in self.options if name not in known]
        if unknown:
            raise RecipeError(
                f"distributed({self.kind!r}) has no option {', '.join(map(repr, unknown))}; it takes "
                f"{', '.join(map(repr, known))}."
            )
        for name in ("offload_optimizer", "offload_param"):
            if self.options.get(name) not in (None, "cpu", "nvme"):
                raise RecipeError(f"{name!r} must be 'cpu', 'nvme' or None (got {self.options[name]!r}).")
        config = self.options.get("config")
        if config is not None and not isinstance(config, Mapping):
            raise RecipeError(
                f"'config' must be a mapping of DeepSpeed settings to merge (got {type(config).__name__})."
            )

    @property
    def is_deepspeed(self) -> bool:
        """Whether the kind is one of the DeepSpeed ZeRO stages."""
        return self.kind.startswith("deepspeed")

    @property
    def zero_stage(self) -> int | None:
        """The DeepSpeed ZeRO stage (2 or 3), or None for DDP and FSDP."""
        return int(self.kind[-1]) if self.is_deepspeed else None


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """A spec's fields as plain data (dicts and lists), for YAML and JSON."""
    return {name: thaw(value) for name, value in attrs.asdict(spec, recurse=False).items()}


def json_key(value: Any) -> str:
    """A stable text key for plain data, used to compare and fingerprint inline rows."""
    return json.dumps(thaw(value), sort_keys=True, ensure_ascii=False, default=str)
