"""First-fit decreasing on sequence lengths: the pure core of the kit's global packer.

``ffd_assign(lengths, capacity)`` gives every sequence the index of its bin (packed row), exactly as the
textbook algorithm does: take the sequences longest first (equal lengths in their original order) and put
each into the lowest-indexed open bin with room for it, opening a new bin when none has room. It runs over
the whole dataset at once, not over chunks of 1,000 rows as TRL's ``pack_dataset`` does.

Why it is fast, and still exact:

* Lengths are integers in ``[1, capacity]``, so the decreasing order is a stable radix sort (``uint16``
  keys for ``capacity < 65536``): O(n).
* Equal lengths form runs, and a run of ``k`` items of length ``L`` can be placed in bulk. When the first
  of them goes to bin ``b`` (the first with residual ``r >= L``), every bin before ``b`` has less than ``L``
  left and is untouched by the run, so the next item goes to ``b`` again while ``b`` still has room: ``b``
  takes ``floor(r / L)`` items, then the next bin with room takes its share, and so on; once no open bin
  has room, each new bin takes ``floor(capacity / L)``. The bins and the number of items each receives are
  a cumulative sum over the open bins with ``r >= L`` in index order, cut at ``k``. This is the
  item-by-item first-fit, computed per run instead of per item.
* Open bins with room are found through a two-level index: residuals are kept in blocks of ``S`` bins
  with each block's maximum, so a run reads the block maxima (``B / S`` numbers) and then only blocks that
  hold a bin with room, at most ``k`` of them since each such bin takes at least one item.

With ``n`` sequences, ``D`` distinct lengths (``D <= capacity``) and ``B <= n`` bins the work is
O(n + capacity + D * B / S + S * n) numpy element operations and O(D) Python steps; ``S`` is chosen near
``sqrt(D)``, giving O(n * sqrt(D)) in the worst case and close to O(n) on real length distributions
(a million SFT sequences take a fraction of a second).

Guarantee on the number of bins: FFD uses at most ``11/9 * OPT + 6/9`` bins (Dósa, 2007; tight), where
``OPT`` is the optimum. That is not a bound against the volume bound ``LB = ceil(total / capacity)``:
``OPT`` can be nearly ``2 * LB`` (every sequence one token longer than half a row). Against ``LB`` any
first-fit packing guarantees ``bins <= ceil(2 * total / capacity) <= 2 * LB``, because any two bins hold
more than ``capacity`` tokens together (the first item of the later bin did not fit the earlier one), and
every bin but the last has less free room than the shortest item of the last bin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

__all__ = ["ffd_assign", "ffd_order"]


def ffd_assign(lengths: ArrayLike, capacity: int) -> NDArray[np.int64]:
    """The bin of every sequence under first-fit decreasing over the whole list (bins numbered 0, 1, ...).

    Args:
        lengths: One positive integer length per sequence, each at most ``capacity``.
        capacity: The room of one bin (a packed row's ``max_length``).

    Returns:
        An ``int64`` array of the same length as ``lengths``: the bin index of each sequence. Bins are
        numbered in the order they are opened, so bin 0 holds the longest sequence.

    Raises:
        ValueError: ``capacity`` is not a positive integer, or a length is outside ``[1, capacity]``.

    Example:
        >>> ffd_assign([3, 7, 5, 2, 3], capacity=10).tolist()
        [0, 0, 1, 1, 1]
    """
    bins, order = ffd_order(lengths, capacity)
    import numpy as np

    assigned = np.empty_like(bins)
    assigned[order] = bins
    return assigned


def ffd_order(lengths: ArrayLike, capacity: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """First-fit decreasing, answered in placement order: ``(bins, order)``.

    ``order`` lists the sequences as FFD takes them (longest first, ties by original index) and
    ``bins[i]`` is the bin of sequence ``order[i]``. Within a bin, sequences appear in ``order``'s order,
    which is the order the packed row lays them out. ``ffd_assign`` is this, scattered back.

    Raises:
        ValueError: as ``ffd_assign``.
    """
    import numpy as np

    if isinstance(capacity, bool) or not isinstance(capacity, int | np.integer) or capacity < 1:
        raise ValueError(f"'capacity' must be a positive integer (got {capacity!r}).")
    capacity = int(capacity)
    sizes = np.asarray(lengths)
    if sizes.ndim != 1:
        raise ValueError(f"'lengths' must be one-dimensional (got shape {sizes.shape}).")
    if sizes.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if not np.issubdtype(sizes.dtype, np.integer):
        raise ValueError(f"'lengths' must hold integers (got dtype {sizes.dtype}).")
    sizes = sizes.astype(np.int64, copy=False)
    low, high = int(sizes.min()), int(sizes.max())
    if low < 1 or high > capacity:
        raise ValueError(
            f"every length must be in [1, {capacity}] (got lengths from {low} to {high}); truncate or split "
            "over-long sequences and drop empty ones before packing."
        )

    # Longest first, equal lengths by original index: a stable sort on (capacity - length), a radix sort
    # when the key fits 16 bits.
    key_type = np.uint16 if capacity < 1 << 16 else np.int64
    order = np.argsort((capacity - sizes).astype(key_type), kind="stable")
    taken = sizes[order]
    n = taken.size
    cuts = np.flatnonzero(taken[1:] != taken[:-1]) + 1
    run_starts = np.concatenate(([0], cuts)).tolist()
    run_ends = np.concatenate((cuts, [n])).tolist()
    run_lengths = taken[run_starts].tolist()

    block = _block_size(len(run_starts))
    blocks_max = n // block + 1  # never more bins than sequences
    residual = np.zeros(blocks_max * block, np.int64)  # room left in each bin; bins not open yet hold 0
    residual_2d = residual.reshape(blocks_max, block)  # a view: updates show in both
    block_max = np.zeros(blocks_max, np.int64)
    bins = np.empty(n, np.int64)
    opened = 0

    for start, end, length in zip(run_starts, run_ends, run_lengths, strict=True):
        left = end - start
        at = start
        used_blocks = -(-opened // block)
        if used_blocks:
            roomy = np.flatnonzero(block_max[:used_blocks] >= length)[:left]
            if roomy.size:
                window = residual_2d[roomy].ravel()
                local = np.flatnonzero(window >= length)
                targets = roomy[local // block] * block + local % block  # ascending bin indices
                fits = window[local] // length
                total = np.cumsum(fits)
                if total[-1] > left:
                    last = int(np.searchsorted(total, left))
                    targets = targets[: last + 1]
                    fits = fits[: last + 1]
                    fits[-1] -= total[last] - left
                placed = int(fits.sum())
                bins[at : at + placed] = np.repeat(targets, fits)
                residual[targets] -= fits * length
                touched = targets // block
                touched = touched[np.concatenate(([True], touched[1:] != touched[:-1]))]
                block_max[touched] = residual_2d[touched].max(axis=1)
                at += placed
                left -= placed
        if left:
            per_bin = capacity // length
            new = -(-left // per_bin)
            bins[at:end] = opened + np.arange(left) // per_bin
            residual[opened : opened + new] = capacity - per_bin * length
            residual[opened + new - 1] = capacity - (left - per_bin * (new - 1)) * length
            first, last_block = opened // block, (opened + new - 1) // block
            block_max[first : last_block + 1] = residual_2d[first : last_block + 1].max(axis=1)
            opened += new
    return bins, order


def _block_size(runs: int) -> int:
    """A power of two near ``sqrt(runs)``, at least 16: balances scanning block maxima against blocks."""
    size = 16
    while size * size < runs:
        size *= 2
    return size
