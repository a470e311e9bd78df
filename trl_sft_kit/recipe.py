"""``SFTRecipe``: the fluent, immutable description of a supervised fine-tune.

Every method returns a new recipe (``attrs.evolve``); the recipe it was called on never changes, and
two recipes with equal settings are equal and hash equal. Building, validating, explaining and
serialising a recipe imports none of torch, transformers, TRL or datasets; ``compile()`` and ``train()``
do the heavy work.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.arguments import checked_arguments
from trl_sft_kit.errors import RecipeError
from trl_sft_kit.sft_fields import resolve_training_fields
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

    from trl_sft_kit.compile import Compiled
    from trl_sft_kit.data.settings import DataSettings
    from trl_sft_kit.inspection import InspectReport
    from trl_sft_kit.result import TrainResult

__all__ = ["SFTRecipe"]


def _training_fields(value: Mapping[str, Any] | None) -> FrozenMapping:
    return value if isinstance(value, FrozenMapping) else FrozenMapping(value or {})


def _dataset_specs(value: Iterable[DatasetSpec]) -> tuple[DatasetSpec, ...]:
    return tuple(value)


@attrs.frozen(repr=False)
class SFTRecipe:
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
                of rows at a time (``trl_sft_kit.data.streaming.PACKING_BUFFER``).
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

    @checked_arguments
    def lora(
        self,
        r: int | Any = 16,
        alpha: float = 32,
        dropout: float = 0.05,
        target_modules: str | Iterable[str] = "all-linear",
        **more_peft_options: Any,
    ) -> Self:
        """Return a new recipe that trains a LoRA adapter; a second call replaces the first.

        Extra keyword arguments go to ``peft.LoraConfig`` (``use_dora=True``, ``modules_to_save=[...]``);
        peft's own names ``lora_alpha`` and ``lora_dropout`` stand for ``alpha`` and ``dropout``. A
        ``peft.LoraConfig`` object may be passed instead of the arguments (``.lora(LoraConfig(r=8))``).

        >>> SFTRecipe().lora(r=8).lora_spec
        LoraSpec(r=8, alpha=32, dropout=0.05, target_modules='all-linear', options={})
        >>> SFTRecipe().lora(r=8, lora_alpha=16).lora_spec.alpha
        16
        """
        from trl_sft_kit.peft_objects import is_lora_config, lora_spec_from

        if is_lora_config(r):
            if more_peft_options or (alpha, dropout, target_modules) != (32, 0.05, "all-linear"):
                raise RecipeError("lora() takes a LoraConfig alone; set the other options on the LoraConfig.")
            return attrs.evolve(self, lora_spec=lora_spec_from(r))
        if "lora_alpha" in more_peft_options:  # peft's names for alpha and dropout
            if alpha != 32:
                raise RecipeError("lora() got both 'alpha' and 'lora_alpha'; keep one.")
            alpha = more_peft_options.pop("lora_alpha")
        if "lora_dropout" in more_peft_options:
            if dropout != 0.05:
                raise RecipeError("lora() got both 'dropout' and 'lora_dropout'; keep one.")
            dropout = more_peft_options.pop("lora_dropout")
        spec = LoraSpec(
            r=r, alpha=alpha, dropout=dropout, target_modules=target_modules, options=more_peft_options
        )
        return attrs.evolve(self, lora_spec=spec)

    @checked_arguments
    def quantize(
        self,
        mode: str | Any = "4bit",
        *,
        quant_type: str = "nf4",
        double_quant: bool = True,
        compute_dtype: str = "auto",
    ) -> Self:
        """Return a new recipe that loads the base model quantized by bitsandbytes; a second call replaces it.

        ``"4bit"`` with LoRA is QLoRA. ``compute_dtype="auto"`` picks bfloat16 on a GPU that supports it,
        else float32. Needs ``.lora()`` too. A ``transformers.BitsAndBytesConfig`` may be passed instead
        (``.quantize(BitsAndBytesConfig(load_in_4bit=True))``); its fields the kit does not carry are refused.

        >>> SFTRecipe().quantize("8bit").quantization_spec.bits
        8
        """
        from trl_sft_kit.peft_objects import is_bnb_config, quantization_spec_from

        if is_bnb_config(mode):
            return attrs.evolve(self, quantization_spec=quantization_spec_from(mode))
        spec = QuantizationSpec(
            mode, quant_type=quant_type, double_quant=double_quant, compute_dtype=compute_dtype
        )
        return attrs.evolve(self, quantization_spec=spec)

    @checked_arguments
    def packing(
        self, strategy: str | bool = "ffd", *, overflow: str | None = None, eval: bool = True
    ) -> Self:
        """Return a new recipe that packs sequences with ``strategy``, or none with ``False``; replaces.

        Strategies come from the packer registry (``trl_sft_kit.packing.packer_names()``): ``"ffd"`` (the
        kit's global first-fit decreasing), TRL's ``"bfd"``, ``"bfd_split"`` and ``"wrapped"``, and any a
        plug-in adds. ``True`` means ``"ffd"``. ``overflow="split"`` cuts sequences longer than
        ``max_length`` into pieces instead of truncating them (tokens cut are always counted);
        ``eval=False`` leaves evaluation data unpacked.

        >>> SFTRecipe().packing("bfd").packing(False).packing_spec is None
        True
        """
        if strategy is False:
            return attrs.evolve(self, packing_spec=None)
        name = "ffd" if strategy is True else strategy
        return attrs.evolve(self, packing_spec=PackingSpec(name, overflow=overflow, eval=eval))

    @checked_arguments
    def neftune(self, alpha: float = 5.0) -> Self:
        """Return a new recipe that adds NEFTune noise of scale ``alpha`` to embeddings; replaces.

        >>> SFTRecipe().neftune(5.0).neftune_spec.alpha
        5.0
        """
        return attrs.evolve(self, neftune_spec=NeftuneSpec(alpha))

    @checked_arguments
    def liger(self, enabled: bool = True) -> Self:
        """Return a new recipe with Liger kernels on (or off); replaces.

        Uses the hub kernels route TRL recommends (``use_kernels=True`` when loading the model), not the
        deprecated ``use_liger_kernel`` flag. Needs a CUDA GPU and the ``liger`` extra (the ``kernels``
        package, in the range transformers pins). The kernels themselves download from the Hub when the
        model loads (then cached), so ``compile()`` refuses ``liger()`` offline before anything loads.
        """
        return attrs.evolve(self, liger_enabled=enabled)

    @checked_arguments
    def loss(
        self, mode: str = "auto", *, turns: str = "all", roles: str | Sequence[str] = ("assistant",)
    ) -> Self:
        """Return a new recipe whose loss is computed on ``mode``'s tokens; replaces.

        ``"auto"`` trains the model's own words: the assistant turns of conversations (replies, reasoning,
        tool calls and their end of turn, not the system prompt, user turns or tool outputs), the
        completion of prompt-completion data (including data converted from instruction formats), every
        token of plain text. ``"trl"`` is TRL's default (the completion of prompt-completion data, every
        token otherwise, what a flat config with ``assistant_only_loss: false`` asks for), ``"all"``
        trains every token, and ``"completion_only"`` / ``"assistant_only"`` say it outright. The kit
        computes the masks itself, on any chat template.

        With ``assistant_only``, ``turns="last"`` trains only the last assistant turn, ``roles`` picks
        the messages trained (``LOSS_ROLES``, like axolotl's ``roles_to_train``): ``"assistant"`` (every
        assistant turn), ``"tool_call"`` (only the assistant turns that call a tool), ``"system"``,
        ``"user"``, ``"tool"`` (their content); and a message with ``"train": false`` (or ``"weight": 0``)
        in the data is left out of the loss.

        >>> SFTRecipe().loss("assistant_only").loss_spec.mode
        'assistant_only'
        >>> SFTRecipe().loss("assistant_only", roles=("assistant", "system")).loss_spec.roles
        ('assistant', 'system')
        """
        return attrs.evolve(self, loss_spec=LossSpec(mode, turns=turns, roles=roles))

    @checked_arguments
    def chat_template(self, name_or_path: str | os.PathLike[str] | None) -> Self:
        """Return a new recipe that uses this chat template; replaces (``None`` keeps the tokenizer's).

        ``name_or_path`` is a template bundled with TRL (``"qwen2_5"``, ``"llama3_2"``), a ``.jinja``
        file, or a tokenizer folder or hub id whose template to take.

        >>> SFTRecipe().chat_template("qwen2_5").tokens_spec.chat_template
        'qwen2_5'
        """
        value = os.fspath(name_or_path) if name_or_path is not None else None
        return attrs.evolve(self, tokens_spec=attrs.evolve(self.tokens_spec, chat_template=value))

    @checked_arguments
    def tokens(self, eos: str | None = None, pad: str | None = None) -> Self:
        """Return a new recipe with these end-of-sequence and padding tokens; replaces both.

        >>> SFTRecipe().tokens(eos="<|im_end|>").tokens_spec.eos
        '<|im_end|>'
        """
        return attrs.evolve(self, tokens_spec=attrs.evolve(self.tokens_spec, eos=eos, pad=pad))

    def training(self, **fields: Any) -> Self:
        """Return a new recipe with these ``SFTConfig`` fields; adds to earlier calls, a repeat replaces.

        Any ``SFTConfig`` field is accepted (``max_length``, ``num_train_epochs``, ``learning_rate``,
        ``output_dir``, ``seed``, ...), plus the aliases ``epochs``, ``batch_size``, ``lr`` and
        ``max_seq_length``. A name SFTConfig lacks fails at once, with the closest name.

        >>> SFTRecipe().training(epochs=3, lr=1e-4).training_fields["num_train_epochs"]
        3
        """
        resolved = resolve_training_fields(fields)
        return attrs.evolve(self, training_fields={**self.training_fields, **resolved})

    @checked_arguments
    def distributed(
        self,
        kind: str | None = "ddp",
        *,
        num_processes: int | None = None,
        num_machines: int = 1,
        **options: Any,
    ) -> Self:
        """Return a new recipe that trains in several processes; replaces (``None`` trains in one).

        ``kind`` is ``"ddp"`` (a copy of the model per process), ``"fsdp"`` (parameters, gradients and
        optimizer state sharded, FSDP2), ``"deepspeed_zero2"`` or ``"deepspeed_zero3"``. The choice is
        recorded in the recipe: under ``torchrun`` or ``accelerate launch`` the trainer is set up for it,
        and ``trl_sft_kit.distributed.launch`` (``trl-sft-kit train RECIPE --launch``) starts the
        processes with a matching ``accelerate`` configuration (``torchrun`` on a machine without GPUs).
        Only the main process writes the adapter, the model card and the logs.

        Args:
            kind: one of ``trl_sft_kit.specs.DISTRIBUTED_KINDS``, or None.
            num_processes: processes on each machine; by default one per GPU.
            num_machines: machines taking part (each runs the launcher with its own ``machine_rank``).
            options: for ``ddp``: ``find_unused_parameters``, ``static_graph``, ``bucket_cap_mb``,
                ``broadcast_buffers``; for ``fsdp``: ``version``, ``auto_wrap_policy``,
                ``transformer_layer_cls_to_wrap``, ``min_num_params``, ``cpu_offload``,
                ``activation_checkpointing``, ``state_dict_type``, ``reshard_after_forward``,
                ``cpu_ram_efficient_loading``; for DeepSpeed: ``offload_optimizer`` and (ZeRO-3)
                ``offload_param`` (``"cpu"`` or ``"nvme"``), and ``config`` (DeepSpeed settings merged
                over the kit's); for every kind ``backend`` (``"nccl"``, ``"gloo"``) and ``timeout``
                (seconds).

        >>> SFTRecipe().distributed("fsdp", num_processes=8, cpu_offload=True).distributed_spec.kind
        'fsdp'
        """
        if kind is None:
            return attrs.evolve(self, distributed_spec=None)
        spec = DistributedSpec(kind, num_processes=num_processes, num_machines=num_machines, options=options)
        return attrs.evolve(self, distributed_spec=spec)

    @checked_arguments
    def cache(self, enabled: bool | None = True) -> Self:
        """Return a new recipe whose prepared data is (or is not) kept in the preprocessing cache; replaces.

        The cache stores the converted, tokenized (and packed) data on disk, in ``data/`` under
        ``$TRL_SFT_KIT_CACHE`` (default ``$HF_HOME/trl_sft_kit``), keyed by the source data's content, the
        data part of the recipe, the tokenizer (vocabulary, chat template, special tokens) and the
        kit's version, so a second ``compile()`` of the same recipe skips that work and any change redoes
        it. ``None`` (the default) caches file and hub sources of at least 1 MiB, never in-memory data;
        ``True`` caches any source; ``False`` never. ``TRL_SFT_KIT_CACHE=off`` turns it off everywhere.
        Streamed sources are never cached.

        >>> SFTRecipe().cache(False).cache_enabled
        False
        """
        return attrs.evolve(self, cache_enabled=enabled)

    # ---------------------------------------------------------------------------------- checking

    def validate(self, *, sources: bool = True) -> Self:
        """Check the whole recipe and return it unchanged, or raise one ``RecipeError`` naming every problem.

        Runs before anything heavy loads. Data is only looked at when it is cheap: a plain-text source
        (``.txt`` or ``format="text"``) is known to be text without reading it. Every local dataset path
        must exist, and a hub dataset id must be in the local cache when offline mode is on; ``sources=False``
        leaves that out (for a recipe written before its data). The full list is in ``docs/concepts.md``.

        Raises:
            RecipeError: with ``problems``, one sentence per conflict and the way out.
            DataSourceError: the only problems are dataset paths that cannot be found (``path`` names the
                first).
        """
        from trl_sft_kit.recipe_checks import check_recipe

        check_recipe(self, sources=sources)
        return self

    def explain(self, *, deep: bool = False) -> str:
        """Text of the resolved plan: model, each source's format and why, the loss in words, packing and
        lengths, adapters, and the SFTConfig fields that matter.

        Loads nothing heavy: formats are detected on small files and in-memory rows only, without a
        tokenizer. ``deep=True`` adds ``inspect()``'s full count (loads the tokenizer, prepares the data).
        """
        from trl_sft_kit.plan import explain_recipe

        return explain_recipe(self, deep=deep)

    def inspect(self, rows: int = 5) -> InspectReport:
        """What training will see, before it starts: format, rendered rows, loss tokens, lengths, packing.

        Runs the data stage ``compile()`` runs with the recipe's tokenizer and chat template; loads no model.
        The report prints in colour (``report.print()``), shows as HTML in a notebook, reads as plain text
        with ``[[`` ``]]`` around the tokens that carry loss (``str(report)``), and converts to plain data
        (``report.to_dict()``, ``report.to_json()``).

        Args:
            rows: how many rows to render with their loss tokens marked (the first ones).

        Raises:
            RecipeError: the recipe is inconsistent, or inconsistent with its data.
            DatasetError: the data cannot be read or converted (file, row and field named).
            BackendError: the tokenizer cannot be loaded.
        """
        from trl_sft_kit.inspection import inspect_recipe

        return inspect_recipe(self, rows)

    # ---------------------------------------------------------------------------------- running

    def compile(self) -> Compiled:
        """Validate, then build the real ``SFTConfig`` and a ready ``SFTTrainer`` (model loaded, PEFT on).

        Returns:
            ``Compiled`` with ``.config``, ``.trainer``, ``.report`` and ``.recipe``.
        """
        from trl_sft_kit.compile import compile_recipe

        return compile_recipe(self)

    def train(self, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
        """Compile and train; return the metrics, the losses and where the adapter or model was saved.

        An ``output_dir`` that already holds files is refused before anything loads, unless ``resume=True``
        (continue from its last checkpoint, with the same data order) or ``overwrite=True`` (delete what a
        previous run left there and start again). See ``Compiled.train``.

        Raises:
            OutputExistsError: the folder holds files and neither flag is set; or it is, or holds, the base
                model's folder, or holds or lies inside the data.
            RunError: another live run holds the folder's lock.
            ResumeError: ``resume=True`` and no complete checkpoint, or one of other data, another seed or
                other recipe fields.
        """
        from trl_sft_kit.compile import config_kwargs, resolve_model
        from trl_sft_kit.runs import check_output_dir, guarded_paths

        model, data = guarded_paths(resolve_model(self)[0], self.dataset_specs)
        output_dir = config_kwargs(self)["output_dir"]
        check_output_dir(output_dir, resume=resume, overwrite=overwrite, model=model, data=data)
        return self.compile().train(resume=resume, overwrite=overwrite)

    # ---------------------------------------------------------------------------------- files

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data; ``SFTRecipe.from_dict(r.to_dict()) == r``.

        Raises:
            ConfigError: the recipe holds a loaded model or a ``datasets.Dataset``, which cannot be written.
        """
        from trl_sft_kit.config import recipe_to_dict

        return recipe_to_dict(self)

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The recipe as YAML text, also written to ``path`` when given.

        Written to a file, relative paths are written relative to the file's folder, which is where
        ``from_yaml`` reads them from.
        """
        from trl_sft_kit.config import dump_yaml

        if path is None:
            return dump_yaml(self.to_dict())
        from trl_sft_kit.config_paths import rebase_paths

        text = dump_yaml(rebase_paths(self.to_dict(), os.getcwd(), Path(path).parent))
        Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SFTRecipe:
        """Build a recipe from ``to_dict()`` output, or from a flat SFT-stage config (legacy keys).

        A legacy config may also be nested as ``stage_configs: {trl_sft: {...}}``.

        Raises:
            ConfigError: an unknown key (with the closest known key) or a value of the wrong type.
        """
        from trl_sft_kit.config import recipe_from_dict

        return recipe_from_dict(data)

    @classmethod
    def from_yaml(cls, path_or_text: str | os.PathLike[str]) -> SFTRecipe:
        """Build a recipe from a YAML file, or from YAML text (anything containing a newline or ``:``).

        Relative paths in a file (data, model, chat template, ``output_dir``) are read from the file's
        folder; in YAML text, from the working directory.

        Raises:
            ConfigError: every problem the file has, numbered, in one error.
        """
        from trl_sft_kit.config import load_yaml, names_file
        from trl_sft_kit.errors import ConfigError

        data = load_yaml(path_or_text)
        is_file = isinstance(path_or_text, os.PathLike) or names_file(str(path_or_text))
        if is_file:
            from trl_sft_kit.config_paths import rebase_paths

            data = rebase_paths(data, Path(path_or_text).parent, os.getcwd(), outside="absolute")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            if exc.path is not None or not is_file:
                raise
            path = os.fspath(path_or_text)
            raise ConfigError(f"{path}: {exc}", key=exc.key, path=path, problems=exc.problems) from None

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
