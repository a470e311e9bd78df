"""The files every output folder gets: a model card (``README.md``), ``recipe.yaml`` and ``run.json``.

``run.json`` is the record of the run as plain data: the base model, metrics, losses, steps, what the data
became (format, row counts, tokens carrying loss, packing), the data fingerprint (``data_fingerprint``: a
SHA-256 of the tokens and labels trained on and of the source files), the adapter and quantization settings
and the library versions. The model card is rendered from that record alone (``render_card``), so a merged
copy of the model gets its card from the same data. ``load_result`` reads the record back.

Nothing here imports torch, transformers, TRL or datasets.

The package's modules: ``record`` (the run as plain data, ``run_info``), ``text`` (the card rendered from
the record, ``render_card``) and ``files`` (writing and reading the folder's files).
"""

from trl_sft_kit.card.files import (
    CARD_FILE,
    RECIPE_FILE,
    RUN_FILE,
    read_run_info,
    write_card,
    write_run_files,
)
from trl_sft_kit.card.record import RUN_FORMAT, is_hub_id, library_versions, run_info
from trl_sft_kit.card.text import TAGS, render_card

__all__ = [
    "CARD_FILE",
    "RECIPE_FILE",
    "RUN_FILE",
    "RUN_FORMAT",
    "TAGS",
    "is_hub_id",
    "library_versions",
    "read_run_info",
    "render_card",
    "run_info",
    "write_card",
    "write_run_files",
]
