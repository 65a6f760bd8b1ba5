"""The data layer's exception, importable without pandas (the serving image has none)."""


class DataError(ValueError):
    """The input data cannot be used; the message says which column and why."""
