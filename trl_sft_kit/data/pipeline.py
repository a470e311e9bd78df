"""The data stage of ``compile()``: from a recipe's sources to the rows the trainer sees.

For each source: read → rename columns → detect → convert → check against the settings
(``trl_sft_kit.data.source_conversion``) → hold out evaluation rows → tokenize with the kit's loss masks →
truncate, counted (``trl_sft_kit.data.source_tokenization``). Then the sources are mixed by weight or count
(``trl_sft_kit.data.mixture``), shuffled and packed, reported (``trl_sft_kit.data.assembly``). Conversion
works on Python rows and tokenization reads them directly, so nothing passes through an Arrow round trip on
the way. Streamed sources take the lazy route of ``trl_sft_kit.data.streaming``; ``compile()`` keeps the
result in the preprocessing cache (``trl_sft_kit.data.cache``). ``compile()`` and ``inspect`` share this
stage; neither needs a model for it. The names the stage's parts define (``PreparedData``,
``check_data``, ``template_eos``, ``max_length_of``, ...) are importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from trl_sft_kit.data.assembly import concatenate, mix_datasets, pack_dataset, shuffle_dataset
from trl_sft_kit.data.mixture import (
    MixtureReport,
    SourceShare,
    combine_reports,
    combine_tokenization,
    plan_rows,
)
from trl_sft_kit.data.prepared import PreparedData
from trl_sft_kit.data.row_store import ChainedRows, is_lazy
from trl_sft_kit.data.settings import (
    DEFAULT_SEED,
    SFTCONFIG_MAX_LENGTH,
    data_seed,
    max_length_of,
    num_proc_of,
    settings_of,
)
from trl_sft_kit.data.source_conversion import check_data, convert_source
from trl_sft_kit.data.source_tokenization import tokenize_source
from trl_sft_kit.data.template_eos import apply_template_eos, template_eos
from trl_sft_kit.errors import RecipeError

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.settings import DataSettings, SupportsDataSettings
    from trl_sft_kit.data.tokenize import TokenizationReport

__all__ = [
    "DEFAULT_SEED",
    "SFTCONFIG_MAX_LENGTH",
    "PreparedData",
    "check_data",
    "data_seed",
    "max_length_of",
    "num_proc_of",
    "prepare_training_data",
    "template_eos",
]


def prepare_training_data(
    settings: DataSettings | SupportsDataSettings,
    tokenizer: PreTrainedTokenizerBase,
    *,
    use_cache: bool = False,
) -> PreparedData:
    """Run the whole data stage for ``recipe`` with ``tokenizer`` (template and tokens already applied).

    Args:
        recipe: the recipe; its sources, loss, ``max_length``, packing and seed are read.
        tokenizer: the tokenizer; its ``eos_token`` is set to the chat template's end of turn when chat
            data is trained (see ``template_eos``).
        use_cache: look the result up in the preprocessing cache first and store it there after, as the
            recipe's ``cache()`` setting and ``$TRL_SFT_KIT_CACHE`` allow (``compile()`` passes True).

    Raises:
        DatasetError: the data cannot be read, detected or converted (file, row and field named).
        RecipeError: the data does not suit the recipe (loss mode, missing chat template, an evaluation
            hold-out that leaves nothing to train on).
    """
    from trl_sft_kit.data.provenance import check_unchanged, source_fingerprints

    settings = settings_of(settings)
    specs = settings.dataset_specs
    if not specs:
        raise RecipeError("no training data: add .dataset(path_or_rows).")
    before = source_fingerprints(specs)  # the cache key and the rows read must be of these bytes
    data = _prepare_sources(settings, tokenizer, use_cache=use_cache)
    check_unchanged(before, source_fingerprints(specs))
    return attrs.evolve(data, sources=before)


def _prepare_sources(
    settings: DataSettings, tokenizer: PreTrainedTokenizerBase, *, use_cache: bool
) -> PreparedData:
    specs = settings.dataset_specs
    if any(spec.streaming for spec in specs):
        from trl_sft_kit.data.streaming import prepare_streamed_data

        return prepare_streamed_data(settings, tokenizer)
    if not use_cache:
        return _prepare(settings, tokenizer)
    from trl_sft_kit.data import cache

    entry = cache.lookup(settings, tokenizer)
    if entry.status.state == "hit":
        loaded = cache.load(entry)
        if loaded is not None:
            if loaded.eos_token is not None:
                tokenizer.eos_token = loaded.eos_token
            return loaded
        entry = cache.lookup(settings, tokenizer, broken=True)
    data = _prepare(settings, tokenizer)
    return attrs.evolve(data, cache=cache.store(entry, data))


def _prepare(settings: DataSettings, tokenizer: PreTrainedTokenizerBase) -> PreparedData:
    from trl_sft_kit.packing import get_packer

    specs = settings.dataset_specs
    seed = data_seed(settings)
    converted = [convert_source(spec, settings, tokenizer) for spec in specs]
    eos = apply_template_eos(settings, [source.report for source in converted], tokenizer)
    packer = get_packer(settings.packing_spec.strategy) if settings.packing_spec is not None else None
    pack_eval = packer is not None and settings.packing_spec is not None and settings.packing_spec.eval
    parts = [
        tokenize_source(
            index, spec, source, settings, tokenizer, packer=packer, pack_eval=pack_eval, seed=seed
        )
        for index, (spec, source) in enumerate(zip(specs, converted, strict=True))
    ]

    mixed = len(specs) > 1 or any(spec.weight is not None or spec.count is not None for spec in specs)
    sizes = [len(part.train) for part in parts]
    if mixed:
        taken = plan_rows(sizes, [spec.weight for spec in specs], [spec.count for spec in specs])
        train = mix_datasets([part.train for part in parts], taken, seed)
    else:
        taken, train = sizes, parts[0].train
    mixture = None
    if mixed or any(part.eval is not None for part in parts):
        mixture = MixtureReport(
            tuple(
                SourceShare(
                    name=part.converted.report.source,
                    format=part.converted.report.format,
                    canonical=part.converted.report.canonical,
                    rows=size,
                    taken=count,
                    weight=spec.weight,
                    count=spec.count,
                    eval_rows=len(part.eval) if part.eval is not None else 0,
                    eval_source=part.eval_source,
                )
                for spec, part, size, count in zip(specs, parts, sizes, taken, strict=True)
            ),
            seed=seed,
        )

    report = combine_reports([part.converted.report for part in parts])
    if mixture is not None:
        report = attrs.evolve(report, notes=(*report.notes, *mixture.summary().splitlines()))
    tokenization = combine_tokenization([part.tokenization for part in parts])
    evals = [part for part in parts if part.eval is not None]
    eval_dataset = None
    eval_tokenization = None
    if evals:
        eval_dataset = concatenate([cast("Dataset", part.eval) for part in evals])
        eval_tokenization = combine_tokenization(
            [cast("TokenizationReport", part.eval_tokenization) for part in evals]
        )

    if settings.training_fields.get("shuffle_dataset"):
        train = shuffle_dataset(train, seed)
    packing = eval_packing = None
    if packer is not None and settings.packing_spec is not None:
        train, packing = pack_dataset(train, packer, settings)
        if eval_dataset is not None and pack_eval:
            eval_dataset, eval_packing = pack_dataset(eval_dataset, packer, settings)
    if any(is_lazy(part.rows) for part in parts):  # rows kept on disk stay there
        rows: Sequence[dict[str, Any]] = ChainedRows([part.rows for part in parts])
    else:
        rows = [row for part in parts for row in part.rows]
    return PreparedData(
        train,
        rows,
        report,
        tokenization,
        packing,
        eos,
        eval_dataset=eval_dataset,
        eval_tokenization=eval_tokenization,
        eval_packing=eval_packing,
        mixture=mixture,
    )
