"""``anomaly-api generate``: write the synthetic sensor data to CSV or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anomaly_api.cli.common import fail, user_errors


def generate(
    *,
    out: Annotated[Path, typer.Option("--out", help="Output file, .csv or .parquet.")],
    rows: Annotated[int, typer.Option(min=10, help="Number of readings.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 42,
    anomaly_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.49, help="Share of anomalous rows.")
    ] = 0.05,
) -> None:
    """Generate labelled synthetic sensor readings (8 channels, 4 anomaly kinds)."""
    from anomaly_api.data.loading import write_table
    from anomaly_api.data.synthetic import KIND_COLUMN, generate_sensor_data

    with user_errors():
        try:
            frame = generate_sensor_data(rows, seed=seed, anomaly_fraction=anomaly_fraction)
        except ValueError as exc:  # arguments the generator cannot honour
            fail(str(exc))
        write_table(frame, out)
    counts = frame[KIND_COLUMN].value_counts().to_dict()
    detail = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    typer.echo(f"wrote {len(frame)} rows to {out} ({detail})")
