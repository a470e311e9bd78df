"""``SFTRecipe``: the fluent, immutable description of a supervised fine-tune.

Every method returns a new recipe (``attrs.evolve``); the recipe it was called on never changes, and
two recipes with equal settings are equal and hash equal. Building, validating, explaining and
serialising a recipe imports none of torch, transformers, TRL or datasets; ``compile()`` and ``train()``
do the heavy work.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.arguments import checked_arguments
from trl_sft_kit.errors import RecipeError
from trl_sft_kit.recipe_actions import RecipeActions
from trl_sft_kit.recipe_options import RecipeOptions
from trl_sft_kit.specs import (
    DatasetSpec,
    DistributedSpec,
    FrozenMapping,
    LoraSpec,
    LossSpec,
    ModelSpec,
    NeftuneSpec,
    PackingSpec,
    QuantizationSpec,
    TokensSpec,
    of_type,
)

if TYPE_CHECKING:
    from typing import Self

    from trl_sft_kit.data.settings import DataSettings

__all__ = ["SFTRecipe"]


def _training_fields(value: Mapping[str, Any] | None) -> FrozenMapping:
    return value if isinstance(value, FrozenMapping) else FrozenMapping(value or {})


def _dataset_specs(value: Iterable[DatasetSpec]) -> tuple[DatasetSpec, ...]:
    return tuple(value)


@attrs.frozen(repr=False)
class SFTRecipe(RecipeOptions, RecipeActions):
    """A supervised fine-tune, described as a value.

    Start from ``SFTRecipe()`` and chain methods; each returns a new recipe. The fields hold one frozen
    spec per option and can be read (``recipe.lora_spec.r``) but not assigned.

    Example:
        >>> from trl_sft_kit import SFTRecipe
        >>> recipe = SFTRecipe().model("Qwen/Qwen2.5-0.5B-Instruct").dataset("chats.jsonl").lora(r=8)
        >>> recipe.lora_spec.r
        8
        >>> recipe.packing("bfd") == recipe.packing("bfd")
        True
    """

    model_spec: ModelSpec | None = None
    dataset_spec: DatasetSpec | None = None
    lora_spec: LoraSpec | None = None
    quantization_spec: QuantizationSpec | None = None
    packing_spec: PackingSpec | None = None
    neftune_spec: NeftuneSpec | None = None
    liger_enabled: bool = attrs.field(default=False, validator=of_type(bool))
    loss_spec: LossSpec = attrs.field(factory=LossSpec)
    tokens_spec: TokensSpec = attrs.field(factory=TokensSpec)
    training_fields: FrozenMapping = attrs.field(factory=FrozenMapping, converter=_training_fields)
    more_datasets: tuple[DatasetSpec, ...] = attrs.field(default=(), converter=_dataset_specs)
    distributed_spec: DistributedSpec | None = None
    cache_enabled: bool | None = attrs.field(default=None, validator=attrs.validators.optional(of_type(bool)))

    # ---------------------------------------------------------------------------------- builders

    @checked_arguments
    def model(
        self,
        name_or_path_or_object: str | os.PathLike[str] | Any,
        *,
        tokenizer: str | os.PathLike[str] | Any = None,
        dtype: str = "auto",
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        **model_init_kwargs: Any,
    ) -> Self:
        """Return a new recipe that fine-tunes this base model; a second call replaces the first.

        Args:
            name_or_path_or_object: a local folder, a hub id, or a loaded ``PreTrainedModel`` (trained in
                place; then pass ``tokenizer=`` too).
            tokenizer: a tokenizer path or loaded tokenizer, when it differs from the model's.
            dtype: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"``.
            attn_implementation: e.g. ``"sdpa"``, ``"flash_attention_2"``, ``"eager"``.
            trust_remote_code: allow custom model code from the hub.
            revision: a hub branch, tag or commit.
            model_init_kwargs: further ``from_pretrained`` keyword arguments, passed through
                (``device_map="auto"``, ``low_cpu_mem_usage=True``, ...); those a recipe method sets
                (``quantization_config``: ``quantize()``; ``use_kernels``: ``liger()``) are refused.

        >>> SFTRecipe().model("gpt2").model("Qwen/Qwen2.5-0.5B").model_spec.name
        'Qwen/Qwen2.5-0.5B'
        >>> dict(SFTRecipe().model("gpt2", device_map="auto").model_spec.init_kwargs)
        {'device_map': 'auto'}
        """
        spec = ModelSpec(
            name_or_path_or_object,
            tokenizer=tokenizer,
            dtype=dtype,
            attn_implementation=attn_implementation,
            trust_remote_code=trust_remote_code,
            revision=revision,
            init_kwargs=model_init_kwargs,
        )
        if spec.is_loaded and spec.tokenizer is None:
            raise RecipeError("a loaded model needs its tokenizer too: .model(model, tokenizer=tokenizer).")
        return attrs.evolve(self, model_spec=spec)

    @checked_arguments
    def dataset(
        self,
        source: str | os.PathLike[str] | Iterable[Mapping[str, Any]] | Any,
        *,
        format: str = "auto",
        split: str = "train",
        text_field: str = "text",
        columns: Mapping[str, str] | None = None,
        on_bad_rows: str = "error",
        weight: float | None = None,
        count: int | None = None,
        eval: float | int | str | os.PathLike[str] | Iterable[Mapping[str, Any]] | Any = None,
        streaming: bool = False,
        media: str = "auto",
        special_tokens_in_text: str = "warn",
        config: str | None = None,
        revision: str | None = None,
    ) -> Self:
        """Return a new recipe that trains on this data; a second call replaces the first (and any mixture).

        To train on several sources at once, add the others with ``.mix(...)``. A second call that gives
        ``weight`` or ``count`` raises ``RecipeError``: it would drop the first source, so use ``.mix()``.

        Args:
            source: a ``.jsonl``/``.json``/``.csv``/``.parquet``/``.txt`` file, a folder of them, a hub
                dataset id, a ``datasets.Dataset``, or a list of dicts.
            format: ``"auto"`` to detect, or a format name (``trl_sft_kit.formats.format_names()``).
            split: the split to read from a hub dataset or ``DatasetDict``.
            text_field: the field holding plain text, for text data.
            columns: renames the source's fields onto a format's names, e.g. ``{"question": "instruction"}``.
            on_bad_rows: ``"error"`` (stop at the first bad row) or ``"skip"`` (skip, count and report).
            weight: this source's share of a mixture (see ``mix``).
            count: exactly this many rows of this source in a mixture, repeating rows when it has fewer.
            eval: hold out a fraction (``0.05``) or a number of rows (``500``) of this source for
                evaluation, chosen by ``data_seed`` (else ``seed``); or a separate evaluation set (a path,
                rows or a ``datasets.Dataset``), read with this source's options. The trainer then evaluates
                at the end of every epoch unless ``.training(eval_strategy=..., eval_steps=...)`` says
                otherwise.
            streaming: read the source lazily while training (a ``datasets.IterableDataset``), for data
                larger than memory; needs ``.training(max_steps=N)``. Packing works on the stream, a buffer
                of rows at a time (``trl_sft_kit.data.stream_rows.PACKING_BUFFER``).
            media: what to do with images, videos and audio in the rows (a ``images`` column, content parts
                of type ``image``, ``<image>`` markers): ``"auto"`` refuses them (``MediaError``) for a
                text-only model, ``"drop"`` leaves them out and removes the markers (counted in the
                ``DatasetReport``), ``"text"`` keeps ``<image>``-style markers as ordinary text.
            config: a hub dataset's configuration (subset) name, ``load_dataset(source, config)``.
            revision: a hub dataset's branch, tag or commit.

        >>> SFTRecipe().dataset("chats.jsonl").dataset_spec.source
        'chats.jsonl'
        >>> SFTRecipe().dataset("a.jsonl").mix("b.jsonl").dataset("c.jsonl").more_datasets
        ()
        """
        spec = _dataset_spec(**_call_arguments(locals()))
        if self.dataset_spec is not None and (weight is not None or count is not None):
            from trl_sft_kit.data.mixture import source_name

            given = "weight" if weight is not None else "count"
            raise RecipeError(
                f"dataset({source_name(spec)!r}, {given}=...) replaces the data already set, so a {given} "
                f"means nothing here and the earlier source would be dropped; add this source with "
                f".mix(source, {given}=...) instead, or call .dataset() once without {given}."
            )
        return attrs.evolve(self, dataset_spec=spec, more_datasets=())

    @checked_arguments
    def mix(
        self,
        source: str | os.PathLike[str] | Iterable[Mapping[str, Any]] | Any,
        *,
        weight: float | None = None,
        count: int | None = None,
        format: str = "auto",
        split: str = "train",
        text_field: str = "text",
        columns: Mapping[str, str] | None = None,
        on_bad_rows: str = "error",
        eval: float | int | str | os.PathLike[str] | Iterable[Mapping[str, Any]] | Any = None,
        streaming: bool = False,
        media: str = "auto",
        special_tokens_in_text: str = "warn",
        config: str | None = None,
        revision: str | None = None,
    ) -> Self:
        """Return a new recipe that also trains on this source; a second call adds another.

        Each source is read and converted in its own detected format and tokenized by the kit, so sources
        of different kinds (chat, instruction, text) mix at the token level. How many rows each gives:

        * ``count=n``: exactly ``n`` rows (rows repeat when the source has fewer).
        * no ``weight`` and no ``count``: every row, once.
        * ``weight=w``: the source's share of the mixture. With every source weighted, the shares are the
          weights over their sum and the mixture has as many rows as the sources together; with some
          sources fixed (by ``count`` or taking every row), the weighted ones are added so that each makes
          up ``w`` of the whole (the weights must then sum to less than 1).

        A source given more rows than it has is repeated (every row the same number of times, the rest a
        seeded sample); one given fewer is sampled; the mixture is then shuffled. All of it follows the
        recipe's ``data_seed`` (else ``seed``), so the same recipe always mixes the same rows.
        ``compile()`` reports each source's rows and share. A first ``mix()`` on a recipe without data
        starts the mixture.

        The other options (``format``, ``split``, ``text_field``, ``columns``, ``on_bad_rows``, ``eval``,
        ``streaming``, ``media``, ``special_tokens_in_text``, ``config``, ``revision``) are those of
        ``dataset``, for this source.

        Args:
            source: as for ``dataset``.
            weight: the source's share of the mixture.
            count: the exact number of rows to take.

        >>> recipe = SFTRecipe().dataset("chat.jsonl").mix("instructions.jsonl", weight=0.3)
        >>> [spec.weight for spec in recipe.dataset_specs]
        [None, 0.3]
        """
        spec = _dataset_spec(**_call_arguments(locals()))
        if self.dataset_spec is None:
            return attrs.evolve(self, dataset_spec=spec, more_datasets=())
        return attrs.evolve(self, more_datasets=(*self.more_datasets, spec))

    @property
    def dataset_specs(self) -> tuple[DatasetSpec, ...]:
        """Every training source: the ``dataset()`` one first, then those added by ``mix()``."""
        return () if self.dataset_spec is None else (self.dataset_spec, *self.more_datasets)

    def data_settings(self) -> DataSettings:
        """The data part of the recipe, as the data stage takes it (``trl_sft_kit.data.settings``)."""
        from trl_sft_kit.data.settings import DataSettings

        return DataSettings(
            self.dataset_specs,
            loss_spec=self.loss_spec,
            packing_spec=self.packing_spec,
            tokens_spec=self.tokens_spec,
            training_fields=self.training_fields,
            cache_enabled=self.cache_enabled,
        )

    def __repr__(self) -> str:
        parts = []
        blank = SFTRecipe()
        for field in attrs.fields(SFTRecipe):
            value = getattr(self, field.name)
            if value == getattr(blank, field.name):
                continue
            parts.append(f"{field.name.removesuffix('_spec')}={value!r}")
        return f"SFTRecipe({', '.join(parts)})"


def _call_arguments(names: Mapping[str, Any]) -> dict[str, Any]:
    """A builder method's own arguments (its ``locals()`` on entry), less ``self``, to pass on whole."""
    return {name: value for name, value in names.items() if name != "self"}


def _dataset_spec(source: Any, *, format: str, **options: Any) -> DatasetSpec:
    """A ``DatasetSpec``, with an unknown format name refused at once."""
    if format != "auto":
        from trl_sft_kit.formats import format_names

        if format not in format_names():
            raise RecipeError(
                f"unknown dataset format {format!r}; choose 'auto' or one of "
                f"{', '.join(map(repr, format_names()))}."
            )
    return DatasetSpec(source, format=format, **options)
