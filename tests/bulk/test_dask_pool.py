"""``guided_bundles`` (how ``train-fleet`` cuts its groups into tasks) and
``pool_meanwhile`` (a pool started while the command reads its data)."""

from __future__ import annotations

from unittest import mock

import pytest

from anomaly_api.bulk import dask_pool
from anomaly_api.bulk.dask_pool import guided_bundles, pool_meanwhile


def test_bundles_keep_every_item_in_order_large_first_single_last() -> None:
    bundles = list(guided_bundles(list(range(100)), 8))
    assert [i for bundle in bundles for i in bundle] == list(range(100))
    sizes = [len(bundle) for bundle in bundles]
    assert sizes[0] == 13  # 1/8 of 100, rounded up
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-8:] == [1] * 8
    assert len(bundles) == 24


def test_bundles_of_few_items_and_of_none() -> None:
    assert list(guided_bundles(["a", "b", "c"], 8)) == [["a"], ["b"], ["c"]]
    assert list(guided_bundles(["a", "b", "c"], 1)) == [["a", "b", "c"]]
    assert list(guided_bundles([], 4)) == []


def test_each_bundle_is_sized_by_what_is_left_when_it_is_asked_for() -> None:
    items = list(range(10))
    bundles = guided_bundles(items, 2)
    assert next(bundles) == [0, 1, 2, 3, 4]
    assert next(bundles) == [5, 6, 7]  # 5 left: ceil(5 / 2)
    assert list(bundles) == [[8], [9]]


class _Pool:
    closed = 0

    def __init__(self, *args: object) -> None:
        self.args = args

    def close(self) -> None:
        _Pool.closed += 1


def test_the_pool_started_meanwhile_is_closed_however_the_block_ends() -> None:
    _Pool.closed = 0
    with mock.patch.object(dask_pool, "DaskPool", _Pool):
        with pool_meanwhile(None, 2, 1, ("x",)) as ready:
            pool = ready()
        assert isinstance(pool, _Pool)
        assert pool.args == (None, 2, 1, ("x",))
        # the block's error is the one raised, and the pool is closed all the same
        with pytest.raises(KeyError, match="read failed"), pool_meanwhile(None, 2, 1):
            raise KeyError("read failed")
    assert _Pool.closed == 2


def test_a_pool_that_cannot_start_raises_when_waited_for() -> None:
    def refuse(*args: object) -> None:
        raise OSError("no scheduler there")

    address = "tcp://127.0.0.1:1"
    with mock.patch.object(dask_pool, "DaskPool", refuse):
        with (
            pytest.raises(OSError, match="no scheduler there"),
            pool_meanwhile(address, None, 1) as ready,
        ):
            ready()
        # the block's error wins over the pool's
        with pytest.raises(KeyError, match="read failed"), pool_meanwhile(address, None, 1):
            raise KeyError("read failed")
