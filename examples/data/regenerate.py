"""Regenerate the sample JSON Lines datasets in this folder.

Usage (from the repository root)::

    python examples/data/regenerate.py

The files are produced deterministically by ``trl_sft_kit.testing.write_sample_dataset``,
so re-running this script only changes them when the generator itself changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

try:
    from trl_sft_kit.testing import write_sample_dataset
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(HERE.parents[1]))
    from trl_sft_kit.testing import write_sample_dataset

# file name -> (format, number of rows)
DATASETS: dict[str, tuple[str, int]] = {
    "chat_sample_data.jsonl": ("messages", 64),
    "instruction_sample_data.jsonl": ("instruction_response", 64),
    "alpaca_sample_data.jsonl": ("alpaca", 32),
    "sharegpt_sample_data.jsonl": ("sharegpt", 32),
    "prompt_completion_sample_data.jsonl": ("prompt_completion", 32),
    "text_sample_data.jsonl": ("text", 32),
}


def main() -> None:
    """Write every sample dataset next to this script."""
    for filename, (fmt, n) in DATASETS.items():
        path = write_sample_dataset(HERE / filename, fmt, n, seed=0)
        print(f"wrote {path} ({n} rows, format={fmt})")


if __name__ == "__main__":
    main()
