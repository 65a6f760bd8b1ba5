"""The LOF's training rows cut into small boxes, for the compiled ``knn_blocks`` scan.

Built once when the scorer is built. The rows are split recursively at the median of
their widest feature (a KD-tree's split, without the tree) into groups of at most
``group_rows`` rows, and each group likewise into blocks of at most ``block_rows`` rows;
every group and every block keeps its bounding box, and each block its rows as float32
(the screen). The kernel skips every group, then every block, whose box is farther than
the current k-th neighbour; in the other blocks it skips every row whose float32 distance
is beyond a proven bound, and computes the others' distances exactly as the plain scan
does (``docs/kernel.md`` says why the answer is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

BLOCK_ROWS = 32
"""Rows per block at most: smaller blocks prune more rows, but cost more bounds and more
mispredicted branches per query row (docs/kernel.md)."""

GROUP_ROWS = 256
"""Rows per group of blocks at most: the kernel computes every group's bound per query row,
and its blocks' bounds only for the groups it visits."""

MAX_BLOCK_ROWS = 256
"""The kernel's limit (``MAX_BLOCK_ROWS`` in ``_kernel.c``)."""


def _split(
    data: NDArray[np.float64], members: NDArray[np.int64], size: int
) -> list[NDArray[np.int64]]:
    """``members`` (row numbers of ``data``) cut into parts of at most ``size`` rows."""
    parts: list[NDArray[np.int64]] = []
    pending = [members]
    while pending:  # depth first, left before right: neighbouring parts stay close
        members = pending.pop()
        if members.size <= size:
            parts.append(members)
            continue
        values = data[members]
        widest = int(np.argmax(values.max(axis=0) - values.min(axis=0)))
        ordered = members[np.argsort(values[:, widest], kind="stable")]
        # Near the median, on a multiple of size: every part but the last is full (fewer,
        # fuller boxes; the kernel's four-row vectors have no tail).
        half = max(size, (ordered.size // 2) // size * size)
        pending.extend([ordered[half:], ordered[:half]])
    return parts


def _boxes(rows: NDArray[np.float64], starts: NDArray[np.int64]) -> tuple[NDArray[np.float64], ...]:
    """(lo, hi), each (n_features, n_parts): the box of rows ``starts[p]:starts[p + 1]``."""
    lo = np.stack([rows[s:e].min(axis=0) for s, e in pairwise(starts)])
    hi = np.stack([rows[s:e].max(axis=0) for s, e in pairwise(starts)])
    return np.ascontiguousarray(lo.T), np.ascontiguousarray(hi.T)


def _screen(rows: NDArray[np.float64], starts: NDArray[np.int64]) -> NDArray[np.float32]:
    """Rows ``starts[b]:starts[b + 1]`` as float32, feature-major block by block, one array."""
    parts = [rows[s:e].astype(np.float32).T.ravel() for s, e in pairwise(starts)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)


def _offsets(sizes: list[int]) -> NDArray[np.int64]:
    """Where each part starts, and the end: 0, then the running sums of ``sizes``."""
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)


@dataclass(frozen=True)
class TrainingBlocks:
    """Training rows in block order, with their float32 screen and each block's and group's
    box."""

    rows: NDArray[np.float64]
    """(n_train, n_features): the rows in block order."""
    screen: NDArray[np.float32]
    """(n_train * n_features,): block ``b``'s rows as float32, feature by feature (all its
    rows' first feature, then their second, ...) from ``starts[b] * n_features`` on."""
    index: NDArray[np.int64]
    """(n_train,): each reordered row's index among the original training rows."""
    starts: NDArray[np.int64]
    """(n_blocks + 1,): block ``b`` holds reordered rows ``starts[b]:starts[b + 1]``."""
    lo: NDArray[np.float64]
    """(n_features, n_blocks): each block's smallest value of each feature."""
    hi: NDArray[np.float64]
    """(n_features, n_blocks): each block's largest value of each feature."""
    groups: NDArray[np.int64]
    """(n_groups + 1,): group ``g`` holds blocks ``groups[g]:groups[g + 1]`` (at least one)."""
    group_lo: NDArray[np.float64]
    """(n_features, n_groups): each group's smallest value of each feature."""
    group_hi: NDArray[np.float64]
    """(n_features, n_groups): each group's largest value of each feature."""

    @classmethod
    def from_rows(
        cls, rows: NDArray[np.float64], block_rows: int = BLOCK_ROWS, group_rows: int = GROUP_ROWS
    ) -> TrainingBlocks:
        """Split ``rows`` (n_train, n_features) into groups of at most ``group_rows`` rows
        (at least ``block_rows``), each into blocks of at most ``block_rows`` rows."""
        if not 1 <= block_rows <= MAX_BLOCK_ROWS:
            raise ValueError(f"block_rows must be in [1, {MAX_BLOCK_ROWS}], got {block_rows}")
        data = np.ascontiguousarray(rows, dtype=np.float64)
        everything = np.arange(data.shape[0], dtype=np.int64)
        grouped = [_split(data, group, block_rows)
                   for group in _split(data, everything, max(group_rows, block_rows))]  # fmt: skip
        blocks = [block for group in grouped for block in group]
        index = np.concatenate(blocks)
        starts = _offsets([block.size for block in blocks])
        ordered_rows = data[index]
        lo, hi = _boxes(ordered_rows, starts)
        groups = _offsets([len(group) for group in grouped])
        group_lo, group_hi = _boxes(ordered_rows, starts[groups])
        result = cls(ordered_rows, _screen(ordered_rows, starts), index, starts, lo, hi,
                     groups, group_lo, group_hi)  # fmt: skip
        result.check(data)
        for array in result.kernel_arrays():
            array.flags.writeable = False  # the kernel trusts boxes and screen: checked here
        return result

    def kernel_arrays(
        self,
    ) -> tuple[NDArray[np.float64] | NDArray[np.float32] | NDArray[np.int64], ...]:
        """The arrays ``knn_blocks`` takes after the query rows, in its order."""
        return (self.rows, self.screen, self.index, self.starts, self.lo, self.hi, self.groups,
                self.group_lo, self.group_hi)  # fmt: skip

    def check(self, rows: NDArray[np.float64]) -> None:
        """``ValueError`` unless the blocks are a permutation of ``rows`` inside their boxes
        and their groups' boxes, with the screen their float32 copy.

        The kernel checks the offsets on every call but not the boxes and the screen (that
        would cost as much as a plain scan); a box that did not contain its rows, or a
        screen value that was not its row's value rounded to float32, could skip a
        neighbour.
        """
        n_train = rows.shape[0]
        if sorted(self.index.tolist()) != list(range(n_train)):
            raise ValueError("blocks: index is not a permutation of the training rows")
        if not np.array_equal(self.rows, rows[self.index]):
            raise ValueError("blocks: reordered rows differ from the training rows")
        screen = _screen(self.rows, self.starts)
        if self.screen.dtype != np.float32 or not np.array_equal(self.screen, screen):
            raise ValueError("blocks: the screen is not the rows rounded to float32")
        columns = self.rows.T
        levels = (
            (self.starts, self.lo, self.hi),
            (self.starts[self.groups], self.group_lo, self.group_hi),
        )
        for starts, lo, hi in levels:
            sizes = np.diff(starts)
            owner = np.repeat(np.arange(sizes.size), sizes)
            if not ((lo[:, owner] <= columns).all() and (columns <= hi[:, owner]).all()):
                raise ValueError("blocks: a row lies outside its block's or its group's box")


__all__ = ["BLOCK_ROWS", "GROUP_ROWS", "MAX_BLOCK_ROWS", "TrainingBlocks"]
