"""The data stage of ``compile()``: from a recipe's sources to the rows the trainer sees.

For each source: read → rename columns → detect → convert → check against the recipe → hold out
evaluation rows → tokenize with the kit's loss masks → truncate (counted). Then the sources are mixed by
weight or count (``trl_sft_kit.data.mixture``) and packed (reported). Conversion works on Python rows and
tokenization reads them directly, so nothing passes through an Arrow round trip on the way. Streamed
sources take the lazy route of ``trl_sft_kit.data.streaming``; ``compile()`` keeps the result in the
preprocessing cache (``trl_sft_kit.data.cache``). ``compile()`` and ``inspect`` share this stage; neither
needs a model for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import attrs

from trl_sft_kit.data.mixture import (
    MixtureReport,
    SourceShare,
    combine_reports,
    combine_tokenization,
    hold_out,
    plan_rows,
    rng_for,
    take_rows,
)
from trl_sft_kit.data.prepare import PreparedRows, convert_rows
from trl_sft_kit.data.report import DatasetReport
from trl_sft_kit.data.settings import settings_of
from trl_sft_kit.data.sources import RawRows, load_rows
from trl_sft_kit.data.tokenize import TokenizationReport, effective_loss, tokenize_dataset
from trl_sft_kit.errors import RecipeError, SFTKitError
from trl_sft_kit.formats import FormatOptions

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.cache import CacheStatus
    from trl_sft_kit.data.settings import DataSettings, SupportsDataSettings
    from trl_sft_kit.packing import Overflow, Packer, PackingReport
    from trl_sft_kit.specs import DatasetSpec

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

SFTCONFIG_MAX_LENGTH = 1024
"""SFTConfig's default ``max_length``, used when the recipe does not set one."""

DEFAULT_SEED = 42
"""SFTConfig's default ``seed``, used to mix and hold out rows when the recipe sets neither seed."""


@attrs.frozen
class PreparedData:
    """The trainer-ready rows and every report of how they were made.

    Attributes:
        dataset: ``input_ids`` and ``labels`` (and ``seq_lengths`` when packed without crossing sequences);
            a ``datasets.IterableDataset`` for streamed sources.
        rows: the canonical training rows before tokenization, source by source (for streamed sources,
            the rows read to detect the format; empty when the data came from the cache).
        report: reading, detection and conversion (of every source together for a mixture, whose shares
            are among its notes).
        tokenization: tokens, tokens carrying loss, truncation.
        packing: the packing report, when the recipe packs.
        eos_token: the chat template's end-of-turn token when it differs from the tokenizer's eos and chat
            data is trained (the model must learn to stop on it), else None.
        eval_dataset: the evaluation rows (held out or read from separate sets), tokenized and, when
            ``packing(eval=True)``, packed; None without ``eval=``.
        eval_tokenization: how the evaluation rows were tokenized.
        eval_packing: how the evaluation rows were packed.
        mixture: each source's rows, rows taken, share and evaluation rows, for a mixture or with ``eval=``.
        cache: whether the preprocessing cache was used, and where (None when it was not consulted).
        streamed: whether ``dataset`` is read while training.
        sources: each source's fingerprint as it was read.
    """

    dataset: Dataset | IterableDataset = attrs.field(repr=False)
    rows: list[dict[str, Any]] = attrs.field(repr=False)
    report: DatasetReport
    tokenization: TokenizationReport
    packing: PackingReport | None = None
    eos_token: str | None = None
    eval_dataset: Dataset | None = attrs.field(default=None, repr=False)
    eval_tokenization: TokenizationReport | None = None
    eval_packing: PackingReport | None = None
    mixture: MixtureReport | None = None
    cache: CacheStatus | None = None
    streamed: bool = False
    sources: tuple[dict[str, Any], ...] = ()
    """Each source's SHA-256 (``data.provenance``), taken before the sources were read and checked again
    after: what ``run.json`` records."""

    def summary(self) -> str:
        """What the data became: format, rows, tokens carrying loss, truncation, packing, eval and cache."""
        parts = [self.report.summary(), self.tokenization.summary()]
        if self.packing is not None:
            parts.append(f"packing: {self.packing.summary()}")
        if self.eval_tokenization is not None:
            parts.append("evaluation " + self.eval_tokenization.summary())
        if self.eval_packing is not None:
            parts.append(f"evaluation packing: {self.eval_packing.summary()}")
        if self.cache is not None:
            parts.append(self.cache.summary())
        return "\n".join(parts)


def max_length_of(settings: DataSettings | SupportsDataSettings) -> int | None:
    """The recipe's ``max_length`` (SFTConfig's default 1024 when unset; None means no limit)."""
    settings = settings_of(settings)
    value = settings.training_fields.get("max_length", SFTCONFIG_MAX_LENGTH)
    return None if value is None else int(value)


def num_proc_of(settings: DataSettings | SupportsDataSettings) -> int | None:
    """The recipe's ``dataset_num_proc``: the kit's own preparation runs over that many processes (None:
    ``$TRL_SFT_KIT_NUM_PROC`` or every core, see ``trl_sft_kit.data.parallel``)."""
    settings = settings_of(settings)
    value = settings.training_fields.get("dataset_num_proc")
    return None if value is None else int(value)


def data_seed(settings: DataSettings | SupportsDataSettings) -> int:
    """The seed that mixes sources and holds out evaluation rows: ``data_seed``, else ``seed``, else 42."""
    settings = settings_of(settings)
    fields = settings.training_fields
    value = fields.get("data_seed")
    if value is None:
        value = fields.get("seed", DEFAULT_SEED)
    return int(value)


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


@attrs.frozen
class _Converted:
    """One source read, converted and checked: its rows, where each came from, and its report."""

    raw: RawRows = attrs.field(repr=False)
    prepared: PreparedRows = attrs.field(repr=False)
    report: DatasetReport
    loss: str
    on_bad_rows: str = "error"
    special_tokens_in_text: str = "warn"

    def label(self, index: int) -> str:
        """``file.jsonl, line 12`` for the ``index``-th converted row."""
        return self.raw.full_label(self.prepared.kept[index])

    def where(self, index: int) -> dict[str, Any]:
        """``RowError``'s path, row and line for the ``index``-th converted row."""
        return self.raw.where(self.prepared.kept[index])


def _convert(spec: DatasetSpec, settings: DataSettings, tokenizer: PreTrainedTokenizerBase) -> _Converted:
    raw = load_rows(spec)
    options = FormatOptions(text_field=spec.text_field, chat=bool(tokenizer.chat_template))
    prepared = convert_rows(raw, spec, options)
    report = prepared.report
    check_data(settings, report, tokenizer)
    rows = prepared.rows
    conversational = report.canonical != "prompt_completion" or isinstance(rows[0].get("prompt"), list)
    loss = effective_loss(settings.loss_spec.mode, report.canonical, conversational=conversational)
    return _Converted(raw, prepared, report, loss, spec.on_bad_rows, spec.special_tokens_in_text)


@attrs.frozen
class _Part:
    """One source's training and evaluation rows, tokenized."""

    converted: _Converted
    rows: list[dict[str, Any]] = attrs.field(repr=False)
    train: Dataset = attrs.field(repr=False)
    tokenization: TokenizationReport
    eval: Dataset | None = attrs.field(default=None, repr=False)
    eval_tokenization: TokenizationReport | None = None
    eval_source: str | None = None


def _prepare(settings: DataSettings, tokenizer: PreTrainedTokenizerBase) -> PreparedData:
    from trl_sft_kit.packing import get_packer

    specs = settings.dataset_specs
    seed = data_seed(settings)
    converted = [_convert(spec, settings, tokenizer) for spec in specs]
    eos = None
    for source in converted:
        eos = template_eos(settings, source.report, tokenizer)
        if eos is not None or source.report.canonical != "text":
            break
    if eos is not None:
        tokenizer.eos_token = eos
    packer = get_packer(settings.packing_spec.strategy) if settings.packing_spec is not None else None
    pack_eval = packer is not None and settings.packing_spec is not None and settings.packing_spec.eval
    parts = [
        _tokenize_source(
            index, spec, source, settings, tokenizer, packer=packer, pack_eval=pack_eval, seed=seed
        )
        for index, (spec, source) in enumerate(zip(specs, converted, strict=True))
    ]

    mixed = len(specs) > 1 or any(spec.weight is not None or spec.count is not None for spec in specs)
    sizes = [len(part.train) for part in parts]
    if mixed:
        taken = plan_rows(sizes, [spec.weight for spec in specs], [spec.count for spec in specs])
        train = _mix([part.train for part in parts], taken, seed)
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
        eval_dataset = _concatenate([cast("Dataset", part.eval) for part in evals])
        eval_tokenization = combine_tokenization(
            [cast("TokenizationReport", part.eval_tokenization) for part in evals]
        )

    if settings.training_fields.get("shuffle_dataset"):
        train = _shuffle(train, seed)
    packing = eval_packing = None
    if packer is not None and settings.packing_spec is not None:
        train, packing = _pack(train, packer, settings)
        if eval_dataset is not None and pack_eval:
            eval_dataset, eval_packing = _pack(eval_dataset, packer, settings)
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


def _tokenize_source(
    index: int,
    spec: DatasetSpec,
    source: _Converted,
    settings: DataSettings,
    tokenizer: PreTrainedTokenizerBase,
    *,
    packer: Packer | None,
    pack_eval: bool,
    seed: int,
) -> _Part:
    """Hold out (or read) the source's evaluation rows and tokenize both parts."""
    rows = source.prepared.rows
    keep = list(range(len(rows)))
    eval_rows: list[dict[str, Any]] = []
    eval_index: Callable[[int], int] = _same
    eval_from: _Converted | None = None
    if spec.holds_out:
        train_at, eval_at = hold_out(
            len(rows), spec.eval, rng_for(seed, 1, index), source=source.report.source
        )
        keep = train_at.tolist()
        held = eval_at.tolist()
        eval_rows = [rows[at] for at in held]
        eval_index = held.__getitem__
    elif spec.eval is not None:
        eval_spec = attrs.evolve(spec, source=spec.eval, eval=None, weight=None, count=None)
        eval_from = _convert(eval_spec, settings, tokenizer)
        eval_rows = eval_from.prepared.rows
    train_rows = [rows[at] for at in keep] if len(keep) != len(rows) else rows
    train, tokenization = _tokenize(
        train_rows,
        tokenizer,
        settings,
        source,
        truncate=packer is None,
        index=keep.__getitem__,
    )
    part = _Part(source, train_rows, train, tokenization)
    if eval_rows:
        kind = eval_from if eval_from is not None else source
        evaluated, eval_tokenization = _tokenize(
            eval_rows, tokenizer, settings, kind, truncate=not pack_eval, index=eval_index
        )
        part = attrs.evolve(
            part,
            eval=evaluated,
            eval_tokenization=eval_tokenization,
            eval_source=eval_from.report.source if eval_from is not None else None,
        )
    return part


def _tokenize(
    rows: list[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    settings: DataSettings,
    source: _Converted,
    *,
    truncate: bool,
    index: Callable[[int], int],
) -> tuple[Dataset, TokenizationReport]:
    """Tokenize ``rows``; row ``i`` is ``source``'s converted row ``index(i)`` (for errors and reports)."""
    return tokenize_dataset(
        rows,
        tokenizer,
        canonical=source.report.canonical,
        loss=source.loss,
        turns=settings.loss_spec.turns,
        roles=settings.loss_spec.roles,
        max_length=max_length_of(settings),
        truncate=truncate,
        on_bad_rows=source.on_bad_rows,
        row_label=lambda at: source.label(index(at)),
        row_where=lambda at: source.where(index(at)),
        source=source.report.source,
        num_proc=num_proc_of(settings),
        special_tokens_in_text=source.special_tokens_in_text,
    )


def _mix(datasets: list[Dataset], taken: list[int], seed: int) -> Dataset:
    """The rows each source gives (repeated or sampled), concatenated and shuffled by the seed."""
    import pyarrow as pa
    from datasets import Dataset

    tables = []
    for index, (dataset, wanted) in enumerate(zip(datasets, taken, strict=True)):
        chosen = take_rows(len(dataset), wanted, rng_for(seed, 2, index))
        tables.append(_table(dataset).take(pa.array(chosen)))
    table = pa.concat_tables(tables)
    order = rng_for(seed, 3).permutation(table.num_rows)
    return Dataset(table.take(pa.array(order)))


def _shuffle(dataset: Dataset, seed: int) -> Dataset:
    """``shuffle_dataset=True``: the training rows in an order drawn from the data seed (before packing)."""
    import pyarrow as pa
    from datasets import Dataset

    order = rng_for(seed, 4).permutation(len(dataset))
    return Dataset(_table(dataset).take(pa.array(order)))


def _concatenate(datasets: list[Dataset]) -> Dataset:
    import pyarrow as pa
    from datasets import Dataset

    if len(datasets) == 1:
        return datasets[0]
    return Dataset(pa.concat_tables([_table(dataset) for dataset in datasets]))


def _table(dataset: Dataset) -> Any:
    """The Arrow table of a freshly built dataset (no indices mapping), with only its schema's metadata."""
    return dataset.data.table


def _pack(dataset: Dataset, packer: Packer, settings: DataSettings) -> tuple[Dataset, PackingReport]:
    from trl_sft_kit.packing import pack

    max_length = max_length_of(settings)
    assert max_length is not None and settings.packing_spec is not None  # validate() refuses otherwise
    overflow = cast("Overflow | None", settings.packing_spec.overflow)
    packed, report = pack(dataset, packer, max_length=max_length, overflow=overflow)
    return packed, report


def template_eos(
    settings: DataSettings | SupportsDataSettings, report: DatasetReport, tokenizer: PreTrainedTokenizerBase
) -> str | None:
    """The chat template's end-of-turn token, when chat data is trained and the tokenizer's eos differs.

    A conversation is trained to stop on the token that ends each assistant turn (``<|im_end|>``,
    ``<|eot_id|>``, ``<end_of_turn>``); that token must also be the tokenizer's and the model's eos, or
    generation runs past the end of the turn. ``.tokens(eos=...)`` overrides this.
    """
    settings = settings_of(settings)
    if settings.tokens_spec.eos is not None or report.canonical == "text" or not tokenizer.chat_template:
        return None
    from trl_sft_kit.data.masks import tokenize_conversation

    # Two turns: the first one's end is the template's end of turn, free of anything a template appends
    # after the last message (phi3 writes the eos token there).
    probe = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye"},
    ]
    try:
        masked = tokenize_conversation(tokenizer, probe, require_end_of_turn=False)
    except SFTKitError:
        return None
    controls = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    first_turn = [span for span in masked.spans if span.message_index == 1]
    for span in first_turn:
        for token_id in reversed(masked.input_ids[span.start : span.end]):
            if token_id in controls:
                token = str(tokenizer.convert_ids_to_tokens(token_id))
                return None if token == tokenizer.eos_token else token
    return None


def check_data(
    settings: DataSettings | SupportsDataSettings, report: DatasetReport, tokenizer: PreTrainedTokenizerBase
) -> None:
    settings = settings_of(settings)
    problems = []
    mode = settings.loss_spec.mode
    if mode == "completion_only" and report.canonical == "text":
        problems.append(
            f"loss 'completion_only' needs prompt-completion data, but {report.source} is plain text "
            f"({report.format!r}); use loss('all') or give prompt/completion rows."
        )
    if mode == "assistant_only" and report.canonical == "text":
        problems.append(
            f"loss 'assistant_only' needs conversational data, but {report.source} is plain text "
            f"({report.format!r}); use loss('all'), or give chat 'messages' rows."
        )
    if settings.loss_spec.roles != ("assistant",) and report.canonical != "messages":
        problems.append(
            f"loss roles {settings.loss_spec.roles!r} choose messages of conversations, but {report.source} "
            f"is {report.canonical!r} rows ({report.format!r}); drop roles=, or give chat 'messages' rows."
        )
    if report.canonical == "messages" and not tokenizer.chat_template:
        problems.append(
            f"{report.source} is chat data but the tokenizer has no chat template; choose one with "
            ".chat_template(<name>) (e.g. 'qwen2_5', 'llama3_2'), a .jinja file, or a tokenizer path."
        )
    if problems:
        raise RecipeError(" ".join(problems), problems=tuple(problems))


def _same(index: int) -> int:
    return index
