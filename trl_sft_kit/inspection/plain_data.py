"""The report as plain data: ``report.to_dict()`` (JSON-ready: each shown row with its token ids, token
texts and loss mask, each packing estimate with its packer's report) and ``report.to_json()``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from trl_sft_kit.inspection.report import InspectReport
    from trl_sft_kit.inspection.values import PackingEstimate, RenderedRow

__all__ = ["report_dict", "report_json"]


def report_dict(report: InspectReport) -> dict[str, Any]:
    """The report as plain data (JSON-ready); each shown row has its token ids, texts and loss mask."""
    tokens = report.tokenization
    return {
        "model": report.model,
        "model_origin": report.model_origin,
        "chat_template": report.chat_template,
        "has_chat_template": report.has_chat_template,
        "eos_token": report.eos_token,
        "source": report.data.source,
        "format": report.data.format,
        "canonical": report.data.canonical,
        "detection": report.data.detection,
        "rows_read": report.data.rows_read,
        "rows_kept": report.data.rows_kept,
        "loss": {"mode": report.loss_mode, "effective": tokens.loss},
        "tokens": {
            "rows": tokens.rows_out,
            "total": tokens.tokens,
            "trained": tokens.trained_tokens,
            "rows_without_trained_tokens": tokens.rows_without_trained_tokens,
        },
        "lengths": {
            **{k: v for k, v in attrs.asdict(report.lengths).items() if k != "histogram"},
            "histogram": [attrs.asdict(b) for b in report.lengths.histogram],
        },
        "max_length": report.truncation.max_length if report.truncation is not None else None,
        "truncation": attrs.asdict(report.truncation) if report.truncation is not None else None,
        "packing": [packing_dict(estimate) for estimate in report.packing],
        "packing_strategy": report.packing_strategy,
        "skipped": [
            {**attrs.asdict(row), "stage": stage}
            for stage, rows in (("conversion", report.data.skipped), ("tokenization", tokens.skipped))
            for row in rows
        ],
        "rows": [row_dict(row) for row in report.rows],
        "notes": list(report.notes),
    }


def report_json(report: InspectReport, indent: int | None = 2) -> str:
    """``to_dict()`` as JSON text."""
    return json.dumps(report.to_dict(), indent=indent, ensure_ascii=False)


def row_dict(row: RenderedRow) -> dict[str, Any]:
    return {
        "index": row.index,
        "source": row.source,
        "num_tokens": row.num_tokens,
        "num_trained": row.num_trained,
        "text": row.text,
        "token_ids": list(row.token_ids),
        "tokens": list(row.tokens),
        "loss_mask": list(row.loss_mask),
        "cut_at": row.cut_at,
        "segments": [attrs.asdict(segment) for segment in row.segments],
        "error": row.error,
    }


def packing_dict(estimate: PackingEstimate) -> dict[str, Any]:
    report = estimate.report
    data: dict[str, Any] = {
        "strategy": estimate.strategy,
        "chosen": estimate.chosen,
        "sequences": estimate.sequences,
        "sampled": estimate.sampled,
        "rows": estimate.rows,
        "note": estimate.note,
        "error": estimate.error,
    }
    if report is not None:
        data.update(
            lower_bound=report.lower_bound,
            fill=report.fill,
            max_length=report.max_length,
            crosses_boundaries=report.crosses_boundaries,
            packed=attrs.asdict(report),
        )
    return data


# ------------------------------------------------------------------------------------------ making it
