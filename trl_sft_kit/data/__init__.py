"""Loading, converting and checking training data; reporting what was kept and what was skipped."""

from trl_sft_kit.data.prepare import convert_rows, detect_spec_format, prepare_dataset, to_dataset
from trl_sft_kit.data.report import DatasetReport, SkippedRow
from trl_sft_kit.data.sources import SUPPORTED_SUFFIXES, RawRows, UnreadableRow, load_rows

__all__ = [
    "SUPPORTED_SUFFIXES",
    "DatasetReport",
    "RawRows",
    "SkippedRow",
    "UnreadableRow",
    "convert_rows",
    "detect_spec_format",
    "load_rows",
    "prepare_dataset",
    "to_dataset",
]
