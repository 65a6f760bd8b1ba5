"""Writing the scored table: a temporary file next to the output, renamed at the end.

Nothing appears under the final name until every row has been read, validated, scored
and written; a failure, Ctrl-C or SIGTERM removes the temporary file.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Self

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from anomaly_api.data.errors import DataError


class AtomicParquetWriter:
    """Appends DataFrames to ``<dir>/.<name>.<pid>.partial``; ``commit()`` renames it."""

    def __init__(self, path: Path) -> None:
        if path.suffix.lower() not in (".parquet", ".pq"):
            raise DataError(f"{path}: the output must be a .parquet file")
        if not path.parent.is_dir():
            raise DataError(f"{path.parent}: no such directory")
        self.path = path
        self.partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append rows; every chunk is cast to the first chunk's column types."""
        if self._schema is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = table.schema.remove_metadata()
            self._writer = pq.ParquetWriter(self.partial, self._schema, compression="zstd")
            table = table.replace_schema_metadata(None)
        else:
            try:
                table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise DataError(
                    f"rows {self.rows + 1}-{self.rows + len(frame)}: a column changes type "
                    f"from the first rows ({exc})"
                ) from exc
        assert self._writer is not None
        self._writer.write_table(table)
        self.rows += len(frame)

    def commit(self) -> None:
        """Close the file and move it to the final name (atomic on one filesystem)."""
        if self._writer is None:  # no rows at all: an empty table with no columns
            pq.write_table(pa.table({}), self.partial)
        else:
            self._writer.close()
            self._writer = None
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
