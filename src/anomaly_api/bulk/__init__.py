"""Bulk scoring of CSV/Parquet files of any size (``anomaly-api score``).

``tables`` reads and validates chunks, ``scoring`` turns feature matrices into the
answer's columns with the service's fast path, ``engines`` runs that in this process, on
Dask or through the HTTP service, ``output`` writes atomically, ``runner`` ties them up.
``dask_pool`` is the Dask client and local cluster the engines and ``train-fleet`` share.
"""
