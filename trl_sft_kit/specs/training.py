"""The specs of how a recipe trains: adapters (``LoraSpec``), quantization, packing, NEFTune, the loss, the
tokens and the processes (``DistributedSpec``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from trl_sft_kit.errors import RecipeError
from trl_sft_kit.specs.values import (
    FrozenMapping,
    _freeze_mapping,
    _number,
    _one_of,
    _optional_count,
    _optional_str,
    of_type,
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
