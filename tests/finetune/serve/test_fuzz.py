"""The schema served at /openapi.json, fuzzed with schemathesis: no request, valid or not, gets a 5xx.

The cases come from the schema's Hypothesis strategy and are sent to the real app in process. The strategy is
schemathesis' stable interface for plain tests; its pytest plugin (`from_fixture`) follows pytest's internals,
which change between pytest releases.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from finetune.serve._app import create_app
from finetune.serve._engine import ChatModel

MAX_TOKENS_LIMIT = 4  # keeps each generated answer short, so the fuzzing stays fast
EXAMPLES_PER_MODE = 25


@pytest.fixture(scope="module")
def api_schema(trained_recipe):
    models = ChatModel.load_shared(trained_recipe.model.base, {"tuned": trained_recipe.adapter_dir})
    app = create_app(models, api_key=None, default_max_tokens=MAX_TOKENS_LIMIT, max_tokens_limit=MAX_TOKENS_LIMIT,
                     batch_wait_ms=0)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_request_gets_a_server_error(api_schema, mode: GenerationMode) -> None:
    seen: list[str] = []

    @given(case=api_schema.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        response = case.call()
        seen.append(f"{case.method} {case.path}")
        assert response.status_code < 500, f"{case.method} {case.path} → {response.status_code}: {response.text[:300]}"
        if response.status_code >= 400:
            assert "error" in response.json(), "errors are OpenAI-style JSON"

    check()
    assert len(seen) >= EXAMPLES_PER_MODE // 2, f"only {len(seen)} requests were sent"
    assert any(path.startswith("POST /v1/chat/completions") for path in seen), "the chat endpoint was fuzzed"
