"""The client imports with httpx and the standard library only."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = (
    "numpy",
    "pandas",
    "sklearn",
    "scipy",
    "fastapi",
    "pydantic",
    "numba",
    "redis",
    "pyarrow",
)


def test_client_imports_without_the_servers_dependencies() -> None:
    script = textwrap.dedent(
        f"""
        import sys

        BLOCKED = {BLOCKED!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        from anomaly_api.client import AnomalyClient, AsyncAnomalyClient, AnomalyApiError
        AnomalyClient("http://127.0.0.1:9").close()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_block_really_blocks() -> None:
    """The same hook makes importing numpy fail, so the test above could fail."""
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "numpy":
                    raise ImportError("blocked")
                return None

        sys.meta_path.insert(0, Block())
        import anomaly_api.artifacts
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "blocked" in done.stderr


def test_client_works_without_orjson() -> None:
    """orjson is an optional speed-up: without it the stdlib json encodes and decodes."""
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "orjson":
                    raise ImportError("blocked")
                return None

        sys.meta_path.insert(0, Block())
        import json
        import httpx
        from anomaly_api.client import AnomalyClient
        from anomaly_api.client import _parse
        assert _parse._orjson is None

        def handle(request):
            features = json.loads(request.content)["features"]
            return httpx.Response(200, json={
                "observation_id": "o", "is_anomaly": True, "anomaly_score": features[0],
                "confidence": 0.9, "model_version": "m", "inference_ms": 1.0,
                "detectors": {"zscore": {"score": -9.0, "threshold": -3.0, "vote": True}},
                "cached": False,
            })

        with AnomalyClient("http://t", transport=httpx.MockTransport(handle)) as client:
            p = client.predict([2.5, 1.0])
        assert p.anomaly_score == 2.5 and p.detectors["zscore"].vote
        try:
            _parse.json_content({"x": float("nan")})
        except ValueError:
            print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
