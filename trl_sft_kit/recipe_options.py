"""The recipe's training options: adapters, quantization, packing, loss, tokens and ``SFTConfig`` fields.

``RecipeOptions`` holds the builder methods ``SFTRecipe`` inherits for everything but the model and the data
(those are in ``recipe.py``); each returns a new recipe with one spec replaced. It has no fields of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.arguments import checked_arguments
from trl_sft_kit.errors import RecipeError
from trl_sft_kit.sft_fields import resolve_training_fields
from trl_sft_kit.specs import (
    DistributedSpec,
    LoraSpec,
    LossSpec,
    NeftuneSpec,
    PackingSpec,
    QuantizationSpec,
)

if TYPE_CHECKING:
    from typing import Self

    from trl_sft_kit.specs import FrozenMapping, TokensSpec

__all__ = ["RecipeOptions"]


class RecipeOptions:
    """The training-option builders of ``SFTRecipe`` (LoRA to the cache); see ``SFTRecipe``."""

    if TYPE_CHECKING:
        tokens_spec: TokensSpec
        training_fields: FrozenMapping

    __slots__ = ()

    def _replace(self, **changes: Any) -> Self:
        """A copy of this recipe with ``changes`` (``attrs.evolve``, every field checked again)."""
        replaced: Self = attrs.evolve(self, **changes)  # type: ignore[misc]
        return replaced

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

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().lora(r=8).lora_spec
        LoraSpec(r=8, alpha=32, dropout=0.05, target_modules='all-linear', options={})
        >>> SFTRecipe().lora(r=8, lora_alpha=16).lora_spec.alpha
        16
        """
        from trl_sft_kit.peft_objects import is_lora_config, lora_spec_from

        if is_lora_config(r):
            if more_peft_options or (alpha, dropout, target_modules) != (32, 0.05, "all-linear"):
                raise RecipeError("lora() takes a LoraConfig alone; set the other options on the LoraConfig.")
            return self._replace(lora_spec=lora_spec_from(r))
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
        return self._replace(lora_spec=spec)

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

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().quantize("8bit").quantization_spec.bits
        8
        """
        from trl_sft_kit.peft_objects import is_bnb_config, quantization_spec_from

        if is_bnb_config(mode):
            return self._replace(quantization_spec=quantization_spec_from(mode))
        spec = QuantizationSpec(
            mode, quant_type=quant_type, double_quant=double_quant, compute_dtype=compute_dtype
        )
        return self._replace(quantization_spec=spec)

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

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().packing("bfd").packing(False).packing_spec is None
        True
        """
        if strategy is False:
            return self._replace(packing_spec=None)
        name = "ffd" if strategy is True else strategy
        return self._replace(packing_spec=PackingSpec(name, overflow=overflow, eval=eval))

    @checked_arguments
    def neftune(self, alpha: float = 5.0) -> Self:
        """Return a new recipe that adds NEFTune noise of scale ``alpha`` to embeddings; replaces.

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().neftune(5.0).neftune_spec.alpha
        5.0
        """
        return self._replace(neftune_spec=NeftuneSpec(alpha))

    @checked_arguments
    def liger(self, enabled: bool = True) -> Self:
        """Return a new recipe with Liger kernels on (or off); replaces.

        Uses the hub kernels route TRL recommends (``use_kernels=True`` when loading the model), not the
        deprecated ``use_liger_kernel`` flag. Needs a CUDA GPU and the ``liger`` extra (the ``kernels``
        package, in the range transformers pins). The kernels themselves download from the Hub when the
        model loads (then cached), so ``compile()`` refuses ``liger()`` offline before anything loads.
        """
        return self._replace(liger_enabled=enabled)

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

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().loss("assistant_only").loss_spec.mode
        'assistant_only'
        >>> SFTRecipe().loss("assistant_only", roles=("assistant", "system")).loss_spec.roles
        ('assistant', 'system')
        """
        return self._replace(loss_spec=LossSpec(mode, turns=turns, roles=roles))

    @checked_arguments
    def chat_template(self, name_or_path: str | os.PathLike[str] | None) -> Self:
        """Return a new recipe that uses this chat template; replaces (``None`` keeps the tokenizer's).

        ``name_or_path`` is a template bundled with TRL (``"qwen2_5"``, ``"llama3_2"``), a ``.jinja``
        file, or a tokenizer folder or hub id whose template to take.

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().chat_template("qwen2_5").tokens_spec.chat_template
        'qwen2_5'
        """
        value = os.fspath(name_or_path) if name_or_path is not None else None
        return self._replace(tokens_spec=attrs.evolve(self.tokens_spec, chat_template=value))

    @checked_arguments
    def tokens(self, eos: str | None = None, pad: str | None = None) -> Self:
        """Return a new recipe with these end-of-sequence and padding tokens; replaces both.

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().tokens(eos="<|im_end|>").tokens_spec.eos
        '<|im_end|>'
        """
        return self._replace(tokens_spec=attrs.evolve(self.tokens_spec, eos=eos, pad=pad))

    def training(self, **fields: Any) -> Self:
        """Return a new recipe with these ``SFTConfig`` fields; adds to earlier calls, a repeat replaces.

        Any ``SFTConfig`` field is accepted (``max_length``, ``num_train_epochs``, ``learning_rate``,
        ``output_dir``, ``seed``, ...), plus the aliases ``epochs``, ``batch_size``, ``lr`` and
        ``max_seq_length``. A name SFTConfig lacks fails at once, with the closest name.

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().training(epochs=3, lr=1e-4).training_fields["num_train_epochs"]
        3
        """
        resolved = resolve_training_fields(fields)
        return self._replace(training_fields={**self.training_fields, **resolved})

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

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().distributed("fsdp", num_processes=8, cpu_offload=True).distributed_spec.kind
        'fsdp'
        """
        if kind is None:
            return self._replace(distributed_spec=None)
        spec = DistributedSpec(kind, num_processes=num_processes, num_machines=num_machines, options=options)
        return self._replace(distributed_spec=spec)

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

        >>> from trl_sft_kit import SFTRecipe
        >>> SFTRecipe().cache(False).cache_enabled
        False
        """
        return self._replace(cache_enabled=enabled)
