"""One source read, detected, converted and checked against the settings, before it is tokenized.

``convert_source`` reads a dataset spec's rows (``trl_sft_kit.data.sources``), detects their format and
converts them to canonical rows (``trl_sft_kit.data.prepare``), then ``check_data`` refuses data the
settings cannot train on (a loss mode, loss roles or a chat template the rows do not suit) and the loss
mode is resolved for the rows' kind. The ``ConvertedSource`` keeps where each row came from, so that a
later error or report names its file and line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from trl_sft_kit.data.prepare import PreparedRows, convert_rows
from trl_sft_kit.data.report import DatasetReport
from trl_sft_kit.data.settings import settings_of
from trl_sft_kit.data.sources import RawRows, load_rows
from trl_sft_kit.data.tokenize import effective_loss
from trl_sft_kit.errors import RecipeError
from trl_sft_kit.formats import FormatOptions

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from trl_sft_kit.data.settings import DataSettings, SupportsDataSettings
    from trl_sft_kit.specs import DatasetSpec

__all__ = ["ConvertedSource", "check_data", "convert_raw", "convert_source"]


@attrs.frozen
class ConvertedSource:
    """One source read, converted and checked: its rows, where each came from, and its report.

    ``raw`` keeps where each row came from, not the rows read: the converted rows are all that is used.
    """

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


def convert_source(
    spec: DatasetSpec, settings: DataSettings, tokenizer: PreTrainedTokenizerBase
) -> ConvertedSource:
    """Read every row of ``spec``'s source, then ``convert_raw`` them."""
    return convert_raw(load_rows(spec), spec, settings, tokenizer)


def convert_raw(
    raw: RawRows, spec: DatasetSpec, settings: DataSettings, tokenizer: PreTrainedTokenizerBase
) -> ConvertedSource:
    """Detect and convert ``raw`` rows, check them against the settings and resolve the loss mode.

    Raises:
        DatasetError: the rows cannot be detected or converted.
        RecipeError: the data does not suit the settings (see ``check_data``).
    """
    options = FormatOptions(text_field=spec.text_field, chat=bool(tokenizer.chat_template))
    prepared = convert_rows(raw, spec, options)
    report = prepared.report
    check_data(settings, report, tokenizer)
    rows = prepared.rows
    conversational = report.canonical != "prompt_completion" or isinstance(rows[0].get("prompt"), list)
    loss = effective_loss(settings.loss_spec.mode, report.canonical, conversational=conversational)
    return ConvertedSource(
        raw.without_rows(), prepared, report, loss, spec.on_bad_rows, spec.special_tokens_in_text
    )


def check_data(
    settings: DataSettings | SupportsDataSettings, report: DatasetReport, tokenizer: PreTrainedTokenizerBase
) -> None:
    """Refuse a source the settings cannot train on, naming every problem and the way out.

    Raises:
        RecipeError: a loss mode or loss roles the rows' kind does not have, or chat data and a tokenizer
            without a chat template.
    """
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
