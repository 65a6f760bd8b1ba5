"""Benchmark suite for issue 5: real servers on loopback, measured in one run.

Run it with ``make bench`` (about five minutes) or ``make bench-smoke`` (a quick pass
that CI runs so the suite cannot rot). See ``python -m bench --help``.
"""
