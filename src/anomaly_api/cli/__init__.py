"""Command-line interface: one Typer command per stage."""
