"""The service layer: prediction orchestration and caching, free of HTTP."""
