"""SFTConfig's data fields under the kit's own preparation: each honoured or refused, never ignored.

The kit tokenizes, masks, truncates and packs the data itself and tells TRL to skip its preparation
(``dataset_kwargs={"skip_prepare_dataset": True}``), so TRL never reads its own data fields. Each one is
accounted for here:

============================ =====================================================================
field                        under the kit
============================ =====================================================================
``dataset_num_proc``         honoured: the kit's worker processes (``trl_sft_kit.data.parallel``)
``max_length``               honoured: the kit truncates (counted) or packs to it
``shuffle_dataset``          honoured: the training rows are shuffled by the data seed before packing
``truncation_mode``          ``"keep_start"`` honoured (what the kit does); ``"keep_end"`` refused
``padding_free``             honoured without packing (the collator); with packing, ``.packing()`` sets it
``pad_to_multiple_of``       honoured (the collator)
``dataset_kwargs``           only ``skip_prepare_dataset=True`` (what the kit sets); anything else refused
``dataset_text_field``       set by ``.dataset(source, text_field=...)`` (``training()`` refuses it)
``packing``,
``packing_strategy``         set by ``.packing(strategy)`` (``training()`` refuses them)
``eval_packing``             set by ``.packing(strategy, eval=True)`` (``training()`` refuses it)
``completion_only_loss``,
``assistant_only_loss``      set by ``.loss(mode)`` (``training()`` refuses them)
``eos_token``, ``pad_token`` set by ``.tokens(eos=..., pad=...)`` (``training()`` refuses them)
============================ =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["data_field_problems"]


def data_field_problems(fields: Mapping[str, Any], *, packing: bool, streaming: bool) -> list[str]:
    """The SFTConfig data fields in ``fields`` that the kit's preparation cannot honour, one sentence each.

    Args:
        fields: a recipe's ``training_fields``.
        packing: whether the recipe packs (``.packing(...)``).
        streaming: whether a source is streamed.

    Returns:
        Problems for the recipe's ``validate()``, each naming the kit setting to use instead.

    Example:
        >>> data_field_problems({"truncation_mode": "keep_end"}, packing=False, streaming=False)[0][:42]
        "truncation_mode='keep_end': the kit keeps "
    """
    problems: list[str] = []
    num_proc = fields.get("dataset_num_proc")
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        problems.append(
            f"dataset_num_proc must be a positive whole number (got {num_proc!r}); 1 prepares the data in "
            "this process, None uses every core."
        )
    if streaming and num_proc is not None:
        problems.append(
            "dataset_num_proc with streaming=True: streamed rows are tokenized one by one while training, "
            "so there is nothing to prepare in parallel; drop dataset_num_proc or stream nothing."
        )
    if streaming and fields.get("shuffle_dataset"):
        problems.append(
            "shuffle_dataset with streaming=True: a stream is read in order and never held whole; drop "
            "shuffle_dataset, or shuffle the source itself."
        )
    mode = fields.get("truncation_mode", "keep_start")
    if mode != "keep_start":
        problems.append(
            f"truncation_mode={mode!r}: the kit keeps the start of a row longer than max_length and counts "
            "every token it cuts (TRL deprecates 'keep_end'); drop truncation_mode, or set "
            ".training(max_length=None) and shorten the rows before training."
        )
    if packing and "padding_free" in fields:
        problems.append(
            "padding_free with .packing(): the packer decides it (on for packers that keep sequences "
            "apart, which need position ids that restart at every sequence); drop padding_free."
        )
    kwargs = fields.get("dataset_kwargs")
    if isinstance(kwargs, Mapping):
        ignored = sorted(str(key) for key in kwargs if key != "skip_prepare_dataset")
        if ignored or kwargs.get("skip_prepare_dataset", True) is not True:
            what = ", ".join(map(repr, ignored)) if ignored else "skip_prepare_dataset=False"
            problems.append(
                f"dataset_kwargs {what}: the kit prepares the data itself and TRL's preparation never runs; "
                "set how rows are read with .dataset(source, ...), the loss with .loss(...), the special "
                "tokens with .tokens(...) and the chat template with .chat_template(...), and drop "
                "dataset_kwargs."
            )
    elif kwargs not in (None, ""):
        problems.append(
            f"dataset_kwargs must be a mapping (got {type(kwargs).__name__}); the kit prepares the data "
            "itself, so drop it."
        )
    return problems
