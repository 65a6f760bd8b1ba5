"""Imported last by the fork server of a pool's local workers (``dask_pool``): moves all
the server imported into the garbage collector's permanent generation (``gc.freeze``).
A worker forked from the server then never has its collector walk those objects: each
walk would write to every page holding them and so copy the server's memory into the
worker page by page, and take CPU from its tasks."""

from __future__ import annotations

import gc

gc.freeze()
