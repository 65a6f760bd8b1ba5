"""Sensor data: the synthetic generator and loading of users' CSV/Parquet files."""
