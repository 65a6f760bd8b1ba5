"""The client's ``model=`` argument against a real server holding two named models."""

from __future__ import annotations

import pytest

from anomaly_api.client import AnomalyApiError, AnomalyClient, AsyncAnomalyClient
from api_testing import ANOMALOUS, NORMAL


def test_every_call_takes_a_model_name(fleet_url: str) -> None:
    with AnomalyClient(fleet_url) as client:
        assert client.predict(NORMAL).model_version == "tiny-1"
        assert client.predict(NORMAL, model="pumps").model_version == "p1"
        batch = client.predict_many([NORMAL, ANOMALOUS], model="pumps")
        assert [p.model_version for p in batch] == ["p1", "p1"]
        window = client.predict_window(["2026-11-29T12:00:00Z"], [NORMAL], model="pumps")
        assert window.model_version == "p1"
        sent = client.send_readings("s-1", ["2026-11-29T12:00:00Z"], [NORMAL], model="pumps")
        assert sent.model_version == "p1"
        assert client.stream_state("s-1", model="pumps").total == 1
        with pytest.raises(AnomalyApiError) as missing:
            client.stream_state("s-1")  # default's streams are another set
        assert missing.value.status_code == 404
        client.reset_stream("s-1", model="pumps")
        with pytest.raises(AnomalyApiError) as unknown:
            client.predict(NORMAL, model="nope")
        assert unknown.value.code == "model_not_found"


async def test_the_async_client_too(fleet_url: str) -> None:
    async with AsyncAnomalyClient(fleet_url) as client:
        answer = await client.predict(NORMAL, model="pumps")
        assert answer.model_version == "p1"
        batch = await client.predict_batch([NORMAL], model="pumps")
        assert batch[0].model_version == "p1"
