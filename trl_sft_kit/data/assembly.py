"""The training set put together from tokenized sources: mixed, shuffled, concatenated and packed.

Arrow tables in, Arrow tables out. ``mix_datasets`` takes the rows each source gives (``plan_rows`` and
``take_rows`` of ``trl_sft_kit.data.mixture``) and shuffles them together, ``shuffle_dataset`` is
``shuffle_dataset=True``, ``concatenate`` joins evaluation sets, ``pack_dataset`` packs with the settings'
packer; every order is drawn from the data seed, so a run gives the same rows each time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from trl_sft_kit.data.mixture import rng_for, take_rows
from trl_sft_kit.data.settings import max_length_of

if TYPE_CHECKING:
    from datasets import Dataset

    from trl_sft_kit.data.settings import DataSettings
    from trl_sft_kit.packing import Overflow, Packer, PackingReport

__all__ = ["concatenate", "mix_datasets", "pack_dataset", "shuffle_dataset"]


def mix_datasets(datasets: list[Dataset], taken: list[int], seed: int) -> Dataset:
    """The rows each source gives (repeated or sampled), concatenated and shuffled by the seed."""
    import numpy as np
    import pyarrow as pa

    from trl_sft_kit.arrow_spool import take_rows as take_table_rows
    from trl_sft_kit.packing.packers import derived_dataset

    chosen = []
    first = 0
    for index, (dataset, wanted) in enumerate(zip(datasets, taken, strict=True)):
        chosen.append(first + np.asarray(take_rows(len(dataset), wanted, rng_for(seed, 2, index)), np.int64))
        first += len(dataset)
    picked = np.concatenate(chosen) if chosen else np.empty(0, np.int64)
    order = rng_for(seed, 3).permutation(picked.size)
    table = pa.concat_tables([_table(dataset) for dataset in datasets])  # no copy: the sources' chunks
    return derived_dataset(datasets, take_table_rows(table, picked[order]), f"mix:{taken}:{seed}")


def shuffle_dataset(dataset: Dataset, seed: int) -> Dataset:
    """``shuffle_dataset=True``: the training rows in an order drawn from the data seed (before packing)."""
    from trl_sft_kit.arrow_spool import take_rows as take_table_rows
    from trl_sft_kit.packing.packers import derived_dataset

    order = rng_for(seed, 4).permutation(len(dataset))
    return derived_dataset([dataset], take_table_rows(_table(dataset), order), f"shuffle:{seed}")


def concatenate(datasets: list[Dataset]) -> Dataset:
    """The datasets' rows one after another (the one dataset itself when there is one)."""
    import pyarrow as pa

    from trl_sft_kit.packing.packers import derived_dataset

    if len(datasets) == 1:
        return datasets[0]
    return derived_dataset(datasets, pa.concat_tables([_table(dataset) for dataset in datasets]), "concat")


def pack_dataset(dataset: Dataset, packer: Packer, settings: DataSettings) -> tuple[Dataset, PackingReport]:
    """``dataset`` packed by ``packer`` to the settings' ``max_length``, with the packing report."""
    from trl_sft_kit.packing import pack

    max_length = max_length_of(settings)
    assert max_length is not None and settings.packing_spec is not None  # validate() refuses otherwise
    overflow = cast("Overflow | None", settings.packing_spec.overflow)
    packed, report = pack(dataset, packer, max_length=max_length, overflow=overflow)
    return packed, report


def _table(dataset: Dataset) -> Any:
    """The Arrow table of a freshly built dataset (no indices mapping), with only its schema's metadata."""
    return dataset.data.table
