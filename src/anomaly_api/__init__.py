"""anomaly-api: anomaly detection for multivariate sensor readings, served over HTTP."""

__version__ = "0.1.0"
