"""The schema served at /openapi.json, fuzzed with schemathesis: no request, valid or not, gets a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from finetune.inference import ChatModel
from finetune.serve import create_app

MAX_TOKENS_LIMIT = 4  # keeps each generated answer short, so the fuzzing stays fast


@pytest.fixture(scope="module")
def api_schema(trained_recipe):
    models = ChatModel.load_shared(trained_recipe.model.base, {"tuned": trained_recipe.adapter_dir})
    app = create_app(models, api_key=None, default_max_tokens=MAX_TOKENS_LIMIT, max_tokens_limit=MAX_TOKENS_LIMIT,
                     batch_wait_ms=0)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.path} → {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert "error" in response.json(), "errors are OpenAI-style JSON"
