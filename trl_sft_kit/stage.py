"""The older SFT pipeline stage's API, on top of ``SFTRecipe``: ``TRLSFTConfig`` and ``TRLSFTStage``.

Pipelines written for the earlier ``TRLSFTStage`` switch to the kit by changing the import; its flat
configuration keys and its ``execute(model, tokenizer)`` stay the same:

```python
from trl_sft_kit.stage import TRLSFTConfig, TRLSFTStage

config = TRLSFTConfig(
    stage_name="trl_sft",
    output_dir="./outputs/trl_sft",
    dataset_name_or_path="chats.jsonl",
    packing=True,
    neftune_noise_alpha=5.0,
)
result = TRLSFTStage(config).execute(model, tokenizer)
dpo_stage.execute(result.model, result.tokenizer)  # the next stage trains what this one trained
```

``TRLSFTConfig.to_recipe()`` builds the ``SFTRecipe`` through ``trl_sft_kit.config.recipe_from_dict``, the
mapping that also reads flat stage configs from YAML, so the stage and the kit read every key alike, and
the config is checked by ``SFTRecipe.validate()`` with the recipe's own errors. Nothing here imports
torch, transformers or TRL until a stage is built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.compile import DEFAULT_OUTPUT_DIR, _import_backend
from trl_sft_kit.config import SECTIONS, recipe_from_dict
from trl_sft_kit.errors import ConfigError
from trl_sft_kit.sft_fields import FIELD_ALIASES
from trl_sft_kit.specs import FrozenMapping, of_type, thaw

if TYPE_CHECKING:
    from typing import Self

    from trl_sft_kit.recipe import SFTRecipe
    from trl_sft_kit.result import TrainResult

__all__ = ["StageResult", "TRLSFTConfig", "TRLSFTStage"]

_STAGE_ONLY = ("merge_adapter", "extra")
"""Fields of the stage config that are not recipe keys."""

_FIELD_NAMES = {"max_length": "max_seq_length"}
"""SFTConfig fields that a stage field of another name sets."""


def _path_or_none(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _target_modules(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _extra(value: Mapping[str, Any] | None) -> FrozenMapping:
    return value if isinstance(value, FrozenMapping) else FrozenMapping(value or {})


def _optional_str(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(
            f"{attribute.name!r} must be a string or None (got {type(value).__name__} {value!r}).",
            key=attribute.name,
        )


@attrs.frozen(init=False)
class TRLSFTConfig:
    """The flat settings of the older SFT pipeline stage, checked the way ``SFTRecipe.validate()`` checks.

    Construct it with keywords (``TRLSFTConfig(**stage_config)`` works for a pipeline's dict); besides the
    fields below, any ``SFTConfig`` field (``max_steps``, ``gradient_accumulation_steps``,
    ``save_strategy``, ...) is accepted and kept in ``extra``, and an alias of a field below (``epochs``,
    ``lr``, ``max_length``) sets that field. It is frozen: make a variant with
    ``attrs.evolve(config, max_steps=10)``, which is checked again.

    Fields and defaults (the older stage's unless noted):

    - ``stage_name="trl_sft"``, ``output_dir="outputs/trl_sft"`` (adapter or model, tokenizer, run files);
      ``dataset_name_or_path`` is required: a data file, a folder of them, or a hub dataset id.
    - ``max_seq_length=2048`` (``SFTConfig.max_length``), ``num_train_epochs=3``,
      ``per_device_train_batch_size=4``, ``learning_rate=2e-4``.
    - ``use_lora=True`` (the older stage always trained a LoRA adapter), ``lora_r=16``,
      ``lora_alpha=32``, ``lora_dropout=0.1``, ``lora_target_modules="all-linear"``.
    - ``use_4bit=False``, ``use_8bit=False``: the kit's default; the older config said 4-bit but its
      stage never quantized the model it was given. ``bnb_4bit_quant_type="nf4"``,
      ``bnb_4bit_compute_dtype="auto"`` (bf16 on a GPU that has it, else fp32: the kit's default),
      ``bnb_4bit_use_double_quant=True``.
    - The note's TRL keys: ``packing=False``, ``packing_strategy="ffd"`` (any registered packer),
      ``completion_only_loss=None`` (TRL's default for the data), ``assistant_only_loss=None`` (unset:
      the kit's ``loss("auto")``, the model's own words; an explicit ``False`` keeps TRL's default and
      trains every token of conversations, as the older stage did),
      ``neftune_noise_alpha=None``, ``use_liger_kernel=False``, ``dataset_text_field="text"``,
      ``chat_template_path=None``, ``eos_token=None``, ``pad_token=None``.
    - New: ``merge_adapter=True`` (see ``TRLSFTStage.execute``), and ``extra``, the other ``SFTConfig``
      fields given.

    Raises:
        ConfigError: a missing dataset, an unknown key (with the closest known one) or a value of the
            wrong type, naming the key.
        RecipeError: settings that cannot work together (e.g. ``use_4bit`` with ``use_lora=False``), with
            the recipe's own message.

    >>> config = TRLSFTConfig(dataset_name_or_path="chats.jsonl", packing=True, max_steps=10)
    >>> config.extra["max_steps"], config.to_recipe().packing_spec.strategy
    (10, 'ffd')
    """

    stage_name: str = attrs.field(default="trl_sft", validator=of_type(str))
    output_dir: str = attrs.field(default=DEFAULT_OUTPUT_DIR, converter=_path_or_none, validator=of_type(str))
    dataset_name_or_path: str | None = attrs.field(
        default=None, converter=_path_or_none, validator=_optional_str
    )
    max_seq_length: int | None = 2048
    num_train_epochs: float = 3
    per_device_train_batch_size: int = 4
    learning_rate: float = 2e-4
    use_lora: bool = True
    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.1
    lora_target_modules: str | tuple[str, ...] = attrs.field(default="all-linear", converter=_target_modules)
    use_4bit: bool = False
    use_8bit: bool = False
    bnb_4bit_quant_type: str = "nf4"
    bnb_4bit_compute_dtype: str = "auto"
    bnb_4bit_use_double_quant: bool = True
    packing: bool = False
    packing_strategy: str = "ffd"
    completion_only_loss: bool | None = None
    assistant_only_loss: bool | None = None
    neftune_noise_alpha: float | None = None
    use_liger_kernel: bool = False
    dataset_text_field: str = "text"
    chat_template_path: str | None = attrs.field(default=None, converter=_path_or_none)
    eos_token: str | None = None
    pad_token: str | None = None
    merge_adapter: bool = attrs.field(default=True, validator=of_type(bool))
    extra: FrozenMapping = attrs.field(factory=FrozenMapping, converter=_extra)

    def __init__(self, **settings: Any) -> None:
        fields = {field.name for field in attrs.fields(TRLSFTConfig)}
        extra = dict(settings.pop("extra", None) or {})
        clashes = sorted(key for key in extra if key in fields)
        if clashes:
            raise ConfigError(
                f"{clashes[0]!r} is a field of TRLSFTConfig; set it directly rather than through extra.",
                key=clashes[0],
            )
        extra.update({key: settings.pop(key) for key in list(settings) if key not in fields})
        for key in list(extra):  # ``epochs=``, ``lr=``, ``max_length=``: names for fields declared here
            name = FIELD_ALIASES.get(key, key)
            target = _FIELD_NAMES.get(name, name)
            if target != key and target in fields:
                if target in settings:
                    raise ConfigError(f"{key!r} and {target!r} set the same field; keep one.", key=key)
                settings[target] = extra.pop(key)
        sections = sorted(key for key in extra if key in SECTIONS)
        if sections:
            raise ConfigError(
                f"{sections[0]!r} is a section of the kit's own config layout, not a stage key; use the "
                "flat keys (lora_r, use_4bit, packing, ...) or SFTRecipe.from_dict for that layout.",
                key=sections[0],
            )
        self.__attrs_init__(**settings, extra=extra)

    def __attrs_post_init__(self) -> None:
        self.validate(sources=False)  # a config may be written before its data; validate() checks it

    def __repr__(self) -> str:
        shown = []
        for field in attrs.fields(TRLSFTConfig):
            value = getattr(self, field.name)
            default: Any = field.default
            factory = getattr(default, "factory", None)  # attrs.Factory
            if factory is not None:
                default = factory()
            if field.name in ("stage_name", "dataset_name_or_path") or value != default:
                shown.append(f"{field.name}={value!r}")
        return f"TRLSFTConfig({', '.join(shown)})"

    def validate(self, *, sources: bool = True) -> Self:
        """Check the config as ``SFTRecipe.validate()`` checks a recipe; return it unchanged.

        ``sources=False`` leaves out whether the dataset path exists (building a config does).

        Looks at nothing but the settings (and, when it is cheap, the data file); installed packages and
        the GPU are checked by ``TRLSFTStage``.

        Raises:
            ConfigError: no dataset, an unknown key or a value of the wrong type.
            RecipeError: settings that conflict, every conflict named with the way out.
        """
        if not self.dataset_name_or_path:
            raise ConfigError(
                "dataset_name_or_path is required: the .jsonl/.json/.csv/.parquet/.txt file, folder or hub "
                "dataset id to train on.",
                key="dataset_name_or_path",
            )
        self.to_recipe().validate(sources=sources)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The settings as one flat mapping of stage keys, ``extra`` spread in (what a YAML stage holds).

        ``SFTRecipe.from_dict(config.to_dict())`` builds the same recipe as ``config.to_recipe()``.
        """
        flat = {
            field.name: thaw(getattr(self, field.name))
            for field in attrs.fields(TRLSFTConfig)
            if field.name not in _STAGE_ONLY
        }
        flat.update(thaw(dict(self.extra)))
        return flat

    def to_recipe(self, model: Any = None, tokenizer: Any = None) -> SFTRecipe:
        """The ``SFTRecipe`` these settings describe, training ``model`` when one is given.

        Args:
            model: a loaded model (trained in place), or a model folder or hub id; ``None`` leaves the
                recipe without a model.
            tokenizer: the model's tokenizer (needed with a loaded model), or its folder.

        A loaded model that is already quantized by bitsandbytes is trained as it is, with LoRA: the
        recipe then has no ``quantize()``, since loading is the only place quantization can happen.

        Raises:
            ConfigError: ``use_4bit``/``use_8bit`` with a loaded model that is not quantized that way, a
                quantized model without LoRA, or a model that already carries a LoRA adapter while
                ``use_lora`` asks for a new one.
        """
        recipe = recipe_from_dict(self.to_dict())
        if model is None:
            return recipe
        if not isinstance(model, (str, os.PathLike)):
            recipe = self._fit_loaded_model(recipe, model)
        return recipe.model(model, tokenizer=tokenizer)

    def _fit_loaded_model(self, recipe: SFTRecipe, model: Any) -> SFTRecipe:
        bits = _quantized_bits(model)
        wanted = recipe.quantization_spec
        if wanted is not None:
            key = f"use_{wanted.bits}bit"
            if bits is None:
                raise ConfigError(
                    f"{key}=True, but the model given to the stage is already loaded without quantization, "
                    "and a loaded model cannot be quantized. Load it with "
                    f"quantization_config=BitsAndBytesConfig(load_in_{wanted.bits}bit=True), pass its folder "
                    f"or hub id instead of the model, or set {key}=False.",
                    key=key,
                )
            if bits != wanted.bits:
                raise ConfigError(
                    f"{key}=True, but the model given to the stage is loaded in {bits}-bit; set "
                    f"use_{bits}bit=True instead, or load the model in {wanted.bits}-bit.",
                    key=key,
                )
            recipe = attrs.evolve(recipe, quantization_spec=None)  # already loaded as asked
        if bits is not None and recipe.lora_spec is None:
            raise ConfigError(
                f"the model given to the stage is quantized ({bits}-bit), so only an adapter can be trained: "
                "set use_lora=True.",
                key="use_lora",
            )
        if _is_peft_model(model) and recipe.lora_spec is not None:
            raise ConfigError(
                "the model given to the stage already carries a LoRA adapter (a PeftModel, as an earlier "
                "stage returns with merge_adapter=False), and TRL cannot add a second one. Merge it first "
                "with model.merge_and_unload(), or set use_lora=False to go on training the adapter it has.",
                key="use_lora",
            )
        return recipe


@attrs.frozen
class StageResult:
    """What ``TRLSFTStage.execute`` produced, ready for the next stage of a pipeline.

    Attributes:
        stage_name: the config's ``stage_name``.
        model: the trained model: the model passed in, trained in place, with the LoRA adapter merged into
            its weights (``merge_adapter=True``, the default), else the ``PeftModel`` holding the adapter.
            Back in eval mode, without gradient checkpointing, ``use_cache`` as it was.
        tokenizer: the tokenizer it was trained with (a copy of the one passed in, with the chat template,
            eos and pad tokens training used).
        metrics: the trainer's final metrics (``train_loss``, ``train_runtime``, ...).
        output_dir: where the adapter (or full model), the tokenizer and the run files were written.
        adapter_path: the folder holding the trained adapter, when LoRA was used, else None.
        model_path: the folder holding the full trained model, when no adapter was trained, else None.
        merged: whether ``model`` has the adapter merged into its weights.
        train_result: the full ``TrainResult`` (losses, steps, recipe, data summary).
    """

    stage_name: str
    model: Any = attrs.field(eq=False, repr=False)
    tokenizer: Any = attrs.field(eq=False, repr=False)
    metrics: dict[str, float]
    output_dir: Path
    adapter_path: Path | None
    model_path: Path | None
    merged: bool
    train_result: TrainResult = attrs.field(eq=False, repr=False)

    @property
    def success(self) -> bool:
        """Always True: the older stage's flag; a stage that fails raises an ``SFTKitError`` instead."""
        return True

    @property
    def tokenizer_path(self) -> Path:
        """The folder the tokenizer was saved in (the older stage's name for it)."""
        return self.output_dir


class TRLSFTStage:
    """One supervised fine-tuning stage of a pipeline: the older stage's interface, run by the kit.

    Building a stage checks, before any model is handed over, that the packages its config needs are
    installed and import (TRL, transformers, peft, torch; bitsandbytes for ``use_4bit``/``use_8bit``;
    the ``liger`` extra and a CUDA GPU for ``use_liger_kernel``), so a pipeline fails at start-up rather
    than after its earlier stages have trained.

    Raises:
        MissingDependencyError: a package is not installed; names the extra to install or the key to drop.
        BackendError: a package is installed but fails to import; says how to reinstall it.
        RecipeError: ``use_liger_kernel`` without a CUDA GPU.
    """

    def __init__(self, config: TRLSFTConfig) -> None:
        if not isinstance(config, TRLSFTConfig):
            raise TypeError(f"TRLSFTStage takes a TRLSFTConfig (got {type(config).__name__}).")
        _import_backend(config.to_recipe())
        self.config = config

    @property
    def stage_name(self) -> str:
        """The config's ``stage_name``."""
        return self.config.stage_name

    def validate_config(self) -> None:
        """Check the config again (it is checked when built; kept for pipelines that call it)."""
        self.config.validate()

    def prepare_model_and_tokenizer(
        self, model: Any, tokenizer: Any, previous_result: Any = None
    ) -> tuple[Any, Any]:
        """Return ``model`` and ``tokenizer`` unchanged: ``execute`` prepares everything itself."""
        return model, tokenizer

    def execute(self, model: Any, tokenizer: Any = None, previous_result: Any = None) -> StageResult:
        """Train ``model`` on the config's data and return it, trained, for the next stage.

        A loaded model is trained in place. With LoRA (the default), the adapter is saved in
        ``output_dir`` and, with ``merge_adapter=True`` (the default), merged into the model's weights
        afterwards, so ``result.model`` is a plain model again: the next stage can add an adapter of its
        own (TRL refuses a ``PeftModel`` together with a new ``peft_config``), evaluate or save it. With
        ``merge_adapter=False``, ``result.model`` is the ``PeftModel``; a next stage then trains that same
        adapter (``use_lora=False``). Merging into a model loaded in 4 or 8 bits rounds the adapter into the
        quantized weights (peft warns); keep it exact with ``merge_adapter=False``.

        Args:
            model: a loaded ``PreTrainedModel`` (or ``PeftModel``), or a model folder or hub id.
            tokenizer: its tokenizer; required with a loaded model.
            previous_result: accepted for pipelines that pass the previous stage's result; unused.

        Raises:
            ConfigError: the model does not fit the config (see ``TRLSFTConfig.to_recipe``).
            RecipeError, DatasetError, BackendError: as ``SFTRecipe.compile()`` and ``train()`` raise them,
                before training starts except for a failure inside the training loop.
        """
        use_cache = getattr(getattr(model, "config", None), "use_cache", None)
        recipe = self.config.to_recipe(model, tokenizer)
        result = recipe.compile().train()
        trained = result.model
        merged = False
        if self.config.merge_adapter and result.adapter_path is not None and _is_peft_model(trained):
            trained = trained.merge_and_unload()
            merged = True
        _ready_for_next_stage(trained, use_cache=True if use_cache is None else bool(use_cache))
        return StageResult(
            stage_name=self.config.stage_name,
            model=trained,
            tokenizer=result.tokenizer,
            metrics=dict(result.metrics),
            output_dir=result.output_dir,
            adapter_path=result.adapter_path,
            model_path=result.model_path,
            merged=merged,
            train_result=attrs.evolve(result, model=trained),
        )

    def __repr__(self) -> str:
        return f"TRLSFTStage({self.config.stage_name!r}, dataset={self.config.dataset_name_or_path!r})"


def _quantized_bits(model: Any) -> int | None:
    """4 or 8 for a model loaded quantized by bitsandbytes, else None."""
    if getattr(model, "is_loaded_in_4bit", False):
        return 4
    if getattr(model, "is_loaded_in_8bit", False):
        return 8
    return None


def _is_peft_model(model: Any) -> bool:
    peft = sys.modules.get("peft")  # a PeftModel cannot exist unless peft was imported
    return peft is not None and isinstance(model, peft.PeftModel)


def _ready_for_next_stage(model: Any, *, use_cache: bool) -> None:
    """Undo what training switched on for itself: train mode, gradient checkpointing, ``use_cache=False``."""
    # transformers 5 renamed gradient checkpointing to activation checkpointing; the old names warn
    checkpointing = getattr(model, "is_activation_checkpointing", None)
    if checkpointing is None:
        checkpointing = getattr(model, "is_gradient_checkpointing", False)
    if checkpointing:
        disable = (
            getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        )
        disable()
    if hasattr(model, "disable_input_require_grads"):
        model.disable_input_require_grads()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "use_cache"):
        config.use_cache = use_cache
    model.eval()
