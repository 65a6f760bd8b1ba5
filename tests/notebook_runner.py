"""Executing a notebook top to bottom in the test suite (with the ``python3_kernel`` fixture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


def run_notebook(path: Path, kernel_name: str, workdir: Path, timeout_s: int = 180) -> list[Any]:
    """Run every cell of ``path`` in ``workdir``; return all code-cell outputs, in order.

    Fails (``CellExecutionError``) on the first cell that raises.
    """
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=timeout_s,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    return [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]


def stream_text(outputs: list[Any]) -> str:
    """Everything the cells printed."""
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
