"""The LOF's training rows cut into small boxes, for the compiled ``knn_blocks`` scan.

Built once when the scorer is built. The rows are split recursively at the median of
their widest feature (a KD-tree's split, without the tree) until each block holds at
most ``block_rows`` rows; each block keeps its bounding box. The kernel skips every block
whose box is farther than the current k-th neighbour, and computes the others' distances
exactly as the plain scan does (``docs/kernel.md`` says why the answer is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

BLOCK_ROWS = 32
"""Rows per block at most: smaller blocks prune more, but cost more bounds per query."""

MAX_BLOCK_ROWS = 256
"""The kernel's limit (``MAX_BLOCK_ROWS`` in ``_kernel.c``)."""


@dataclass(frozen=True)
class TrainingBlocks:
    """Training rows in block order, feature-major, with each block's bounding box."""

    train_t: NDArray[np.float64]
    """(n_features, n_train): the rows in block order, one feature per row of the array."""
    index: NDArray[np.int64]
    """(n_train,): each reordered row's index among the original training rows."""
    starts: NDArray[np.int64]
    """(n_blocks + 1,): block ``b`` holds reordered rows ``starts[b]:starts[b + 1]``."""
    lo: NDArray[np.float64]
    """(n_features, n_blocks): each block's smallest value of each feature."""
    hi: NDArray[np.float64]
    """(n_features, n_blocks): each block's largest value of each feature."""

    @classmethod
    def from_rows(cls, rows: NDArray[np.float64], block_rows: int = BLOCK_ROWS) -> TrainingBlocks:
        """Split ``rows`` (n_train, n_features) into blocks of at most ``block_rows`` rows."""
        if not 1 <= block_rows <= MAX_BLOCK_ROWS:
            raise ValueError(f"block_rows must be in [1, {MAX_BLOCK_ROWS}], got {block_rows}")
        data = np.ascontiguousarray(rows, dtype=np.float64)
        blocks: list[NDArray[np.int64]] = []
        pending = [np.arange(data.shape[0], dtype=np.int64)]
        while pending:  # depth first, left before right: neighbouring blocks stay close
            members = pending.pop()
            if members.size <= block_rows:
                blocks.append(members)
                continue
            values = data[members]
            widest = int(np.argmax(values.max(axis=0) - values.min(axis=0)))
            ordered = members[np.argsort(values[:, widest], kind="stable")]
            # Near the median, on a multiple of block_rows: every block but the last is
            # full (fewer, fuller boxes; the kernel's 4-row groups have no tail).
            half = max(block_rows, (ordered.size // 2) // block_rows * block_rows)
            pending.extend([ordered[half:], ordered[:half]])
        index = np.concatenate(blocks)
        sizes = np.array([b.size for b in blocks], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        ordered_rows = data[index]
        lo = np.stack([ordered_rows[s:e].min(axis=0) for s, e in pairwise(starts)])
        hi = np.stack([ordered_rows[s:e].max(axis=0) for s, e in pairwise(starts)])
        result = cls(
            train_t=np.ascontiguousarray(ordered_rows.T),
            index=index,
            starts=starts,
            lo=np.ascontiguousarray(lo.T),
            hi=np.ascontiguousarray(hi.T),
        )
        result.check(data)
        for array in (result.train_t, result.index, result.starts, result.lo, result.hi):
            array.flags.writeable = False  # the kernel trusts the boxes: checked once here
        return result

    def check(self, rows: NDArray[np.float64]) -> None:
        """``ValueError`` unless the blocks are a permutation of ``rows`` inside their boxes.

        The kernel checks the offsets on every call but not the boxes (that would cost
        as much as a plain scan); a box that did not contain its rows could skip a
        neighbour.
        """
        n_train = rows.shape[0]
        if sorted(self.index.tolist()) != list(range(n_train)):
            raise ValueError("blocks: index is not a permutation of the training rows")
        if not np.array_equal(self.train_t, rows[self.index].T):
            raise ValueError("blocks: reordered rows differ from the training rows")
        sizes = np.diff(self.starts)
        owner = np.repeat(np.arange(sizes.size), sizes)
        if not (
            (self.lo[:, owner] <= self.train_t).all() and (self.train_t <= self.hi[:, owner]).all()
        ):
            raise ValueError("blocks: a row lies outside its block's box")


__all__ = ["BLOCK_ROWS", "MAX_BLOCK_ROWS", "TrainingBlocks"]
