"""The server as clients see it: streaming, sampling options, batching, several models, errors, metrics, logs."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import torch

from finetune.serve._app import BackgroundServer, create_app
from finetune.serve._batching import MicroBatcher
from finetune.serve._decoding import GenerationRequest, Sampling
from finetune.serve._engine import ChatModel

PROMPTS = [
    [{"role": "user", "content": "Гемоглобин 98 г/л — это нормально?"}],
    [{"role": "system", "content": "Сіз дәрігерсіз."}, {"role": "user", "content": "Қан қысымы 150/95."}],
    [{"role": "user", "content": "血红蛋白偏低是什么意思？"}],
    [{"role": "user", "content": "Назначен омепразол 20 мг утром."}],
]
SECRET_PHRASE = "Иванова Мария Петровна, полис 4455667788"


@pytest.fixture(scope="module")
def models(trained_recipe) -> dict[str, ChatModel]:
    """Base and tuned sharing one copy of the base weights, as `medtune serve` loads them."""
    return ChatModel.load_shared(trained_recipe.model.base, {"tuned": trained_recipe.adapter_dir})


@pytest.fixture(scope="module")
def server(models) -> Iterator[BackgroundServer]:
    app = create_app(models, max_batch_size=8, batch_wait_ms=20, max_tokens_limit=64)
    with BackgroundServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def test_shared_weights_serve_base_and_adapter_like_separate_models(trained_recipe, models) -> None:
    conversation = [*PROMPTS[0], {"role": "assistant", "content": "Это ниже нормы."}]
    alone_base = ChatModel.load(trained_recipe.model.base, name="base")
    alone_tuned = ChatModel.load(trained_recipe.model.base, adapter=trained_recipe.adapter_dir, name="tuned")
    # Alternate between the two views of the shared model: switching must not leak the adapter.
    for _ in range(2):
        assert models["base"].score([conversation])[0].nll == pytest.approx(
            alone_base.score([conversation])[0].nll, rel=1e-6)
        assert models["tuned"].score([conversation])[0].nll == pytest.approx(
            alone_tuned.score([conversation])[0].nll, rel=1e-6)
    assert models["tuned"].generate(PROMPTS[:2], max_new_tokens=6) == alone_tuned.generate(PROMPTS[:2],
                                                                                         max_new_tokens=6)


def test_one_server_holds_base_adapters_and_merged_models(trained_recipe, recipe_factory, tmp_path) -> None:
    import shutil

    from finetune.serve._loading import models_for_recipe

    recipe = recipe_factory(tmp_path / "run", trained_recipe.model.base, eval={"tuned": "adapter"})
    shutil.copytree(trained_recipe.adapter_dir, recipe.adapter_dir, ignore=shutil.ignore_patterns("checkpoints"))
    served = models_for_recipe(recipe, adapters={"kk": trained_recipe.adapter_dir},
                               merged={"plain": trained_recipe.model.base})
    assert list(served) == ["base", "tuned", "kk", "plain"]
    conversation = [*PROMPTS[0], {"role": "assistant", "content": "Это ниже нормы."}]
    nll = {name: model.score([conversation])[0].nll for name, model in served.items()}
    assert nll["tuned"] == pytest.approx(nll["kk"], rel=1e-6) and nll["base"] == pytest.approx(nll["plain"], rel=1e-6)
    assert nll["tuned"] != pytest.approx(nll["base"])
    assert served["base"].model is served["kk"].model, "adapters share one copy of the base weights"
    with pytest.raises(ValueError, match="given twice"):
        models_for_recipe(recipe, adapters={"base": trained_recipe.adapter_dir})


def test_serve_command_rejects_malformed_model_arguments(capsys) -> None:
    from finetune.cli._commands import main

    assert main(["serve", "--adapter", "kk"]) == 2
    assert "expected NAME=DIR" in capsys.readouterr().err


def test_rows_of_one_batch_keep_their_own_limits_and_stops(models) -> None:
    model = models["tuned"]
    free = model.generate([PROMPTS[0]], max_new_tokens=12)[0]
    assert free.completion_tokens > 3, "the tiny model must say something for this test to mean anything"
    stop = free.text[2:5]
    requests = [
        GenerationRequest(PROMPTS[0], max_new_tokens=12, stop=(stop,)),
        GenerationRequest(PROMPTS[0], max_new_tokens=3),
        GenerationRequest(PROMPTS[2], max_new_tokens=12),
    ]
    stopped, short, other = model.generate_batch(requests)
    assert stopped.text == free.text[: free.text.find(stop)] and stopped.finish_reason == "stop"
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    assert other == model.generate([PROMPTS[2]], max_new_tokens=12)[0]


def test_batches_are_padded_without_touching_the_shared_tokenizer_state(models) -> None:
    """The server counts prompt tokens on its event loop while the batcher encodes a batch with the same fast
    tokenizer; padding through the tokenizer switched its shared padding state under a batch mid-call (seen as
    sporadic 500s under load). Batches are padded by `ChatModel` itself, so that state never changes."""
    model = models["tuned"]
    backend = model.tokenizer._tokenizer
    backend.no_padding()
    side = model.tokenizer.padding_side
    conversation = [*PROMPTS[0], {"role": "assistant", "content": "Это ниже нормы."}]
    model.generate(PROMPTS, max_new_tokens=2)
    model.score([conversation, [*PROMPTS[2], {"role": "assistant", "content": "说明可能贫血。"}]])
    assert backend.padding is None and model.tokenizer.padding_side == side


def test_micro_batcher_decodes_concurrent_requests_together(models) -> None:
    sizes: list[int] = []
    batcher = MicroBatcher(models["tuned"], max_batch_size=4, max_wait_s=0.2, on_batch=sizes.append)
    try:
        futures = [batcher.submit(GenerationRequest(p, max_new_tokens=6)) for p in PROMPTS]
        results = [f.result(timeout=60) for f in futures]
        seeded = batcher.submit(GenerationRequest(PROMPTS[0], 6), Sampling(temperature=1.0, seed=3)).result(60)
    finally:
        batcher.close()
    assert sizes == [4, 1], "four concurrent requests share one batch"
    assert results == models["tuned"].generate(PROMPTS, max_new_tokens=6)
    again = models["tuned"].generate_batch([GenerationRequest(PROMPTS[0], 6)], Sampling(temperature=1.0, seed=3))
    assert seeded == again[0]


def test_seeded_rows_of_one_batch_each_answer_as_they_would_alone(models) -> None:
    """Greedy, seeded and differently tempered requests share one batch; each seeded row draws from a generator
    of its own, and the process-wide RNG (shared by every thread) is left alone."""
    model = models["tuned"]
    jobs = [
        (PROMPTS[0], Sampling(temperature=1.0, seed=1)),
        (PROMPTS[1], Sampling(temperature=1.0, top_p=0.9, seed=2)),
        (PROMPTS[0], Sampling(temperature=0.7, seed=1)),
        (PROMPTS[2], Sampling()),
        (PROMPTS[3], Sampling(temperature=1.3, seed=2**64 - 1)),
    ]
    alone = [model.generate_batch([GenerationRequest(p, 8)], s)[0] for p, s in jobs]
    sizes: list[int] = []
    batcher = MicroBatcher(model, max_batch_size=len(jobs), max_wait_s=2.0, on_batch=sizes.append)
    torch.manual_seed(0)
    expected_draw = torch.rand(3)
    torch.manual_seed(0)
    try:
        together = [f.result(timeout=60) for f in [batcher.submit(GenerationRequest(p, 8), s) for p, s in jobs]]
    finally:
        batcher.close()
    assert sizes == [len(jobs)]
    assert together == alone
    assert torch.equal(torch.rand(3), expected_draw), "sampling never touches the process-wide RNG"
    same_seed_twice = model.generate_batch([GenerationRequest(PROMPTS[0], 8)] * 2, Sampling(temperature=1.0, seed=1))
    assert same_seed_twice == [alone[0], alone[0]], "one Sampling for a batch: every row seeded alike"


def test_streaming_with_the_openai_client_matches_the_plain_answer(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="tuned", messages=PROMPTS[1], max_tokens=12)
    stream = client.chat.completions.create(model="tuned", messages=PROMPTS[1], max_tokens=12, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_stop_strings_cut_plain_and_streamed_answers_alike(client: openai.OpenAI) -> None:
    free = client.chat.completions.create(model="base", messages=PROMPTS[0], max_tokens=16).choices[0]
    assert len(free.message.content) > 6
    stop = free.message.content[3:6]
    expected = free.message.content[: free.message.content.find(stop)]
    cut = client.chat.completions.create(model="base", messages=PROMPTS[0], max_tokens=16, stop=[stop, "§§"])
    assert cut.choices[0].message.content == expected and cut.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model="base", messages=PROMPTS[0], max_tokens=16, stop=stop,
                                              stream=True)
    pieces = [c.choices[0].delta.content or "" for c in streamed if c.choices]
    assert "".join(pieces) == expected, "no part of a stop string may leak into the stream"


def test_max_tokens_temperature_top_p_and_seed(client: openai.OpenAI) -> None:
    short = client.chat.completions.create(model="base", messages=PROMPTS[2], max_tokens=2)
    assert short.usage.completion_tokens <= 2
    options = {"model": "base", "messages": PROMPTS[2], "max_tokens": 10, "temperature": 1.3, "top_p": 0.9}
    first = client.chat.completions.create(**options, seed=11).choices[0].message.content
    again = client.chat.completions.create(**options, seed=11).choices[0].message.content
    assert first == again


def test_concurrent_requests_are_batched_and_answered_correctly(server: BackgroundServer, models) -> None:
    def ask(messages: list[dict]) -> str:
        body = {"model": "tuned", "messages": messages, "max_tokens": 8}
        return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=60).json()[
            "choices"][0]["message"]["content"]

    prompts = PROMPTS * 4
    with ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(ask, prompts))
    expected = {i: c.text for i, c in enumerate(models["tuned"].generate(PROMPTS, max_new_tokens=8))}
    assert answers == [expected[i % len(PROMPTS)] for i in range(len(prompts))]
    metrics = httpx.get(f"{server.base_url}/metrics").text
    count = _sample(metrics, 'medtune_generation_batch_size_count{model="tuned"}')
    total = _sample(metrics, 'medtune_generation_batch_size_sum{model="tuned"}')
    assert total / count > 1, "concurrent requests were decoded together"


def test_metrics_count_requests_tokens_and_latency(client: openai.OpenAI, server: BackgroundServer) -> None:
    before = httpx.get(f"{server.base_url}/metrics").text
    response = client.chat.completions.create(model="base", messages=PROMPTS[3], max_tokens=5)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=PROMPTS[3])
    after = httpx.get(f"{server.base_url}/metrics").text
    ok = 'medtune_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}'
    missing = 'medtune_http_requests_total{method="POST",route="/v1/chat/completions",status="404"}'
    assert _sample(after, ok) == _sample(before, ok) + 1
    assert _sample(after, missing) == _sample(before, missing) + 1
    tokens = 'medtune_completion_tokens_total{model="base"}'
    assert _sample(after, tokens) == _sample(before, tokens) + response.usage.completion_tokens
    latency = 'medtune_chat_completion_duration_seconds_count{model="base"}'
    assert _sample(after, latency) == _sample(before, latency) + 1
    assert "no-such-model" not in after, "clients cannot create metric series"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"model": "base", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
         400, "only text parts"),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n:"),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 65}, 400,
         "exceeds this server's limit"),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]},
         400, "at most 4"),
        ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "temperature": 3}, 400,
         "temperature"),
        ({"model": "base", "messages": [{"role": "tool", "content": "x"}]}, 400, "role"),
        ({"model": "base", "messages": [{"role": "user"}]}, 400, "messages.0.content: Field required"),
        ({"model": "base"}, 400, "messages"),
        ({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404, "not served here"),
    ],
)
def test_bad_requests_get_openai_style_4xx(server: BackgroundServer, body: dict, status: int,
                                           fragment: str) -> None:
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"] and error["type"] == "invalid_request_error"


def test_malformed_json_and_unpaired_surrogates_are_400(server: BackgroundServer) -> None:
    url = f"{server.base_url}/v1/chat/completions"
    broken = httpx.post(url, content=b'{"model": "base", "messages": [', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "error" in broken.json()
    surrogate = b'{"model": "base", "messages": [{"role": "user", "content": "\\ud800"}]}'
    response = httpx.post(url, content=surrogate, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "surrogate" in response.json()["error"]["message"]


def test_no_prompt_or_completion_text_in_logs_unless_asked(models, caplog: pytest.LogCaptureFixture) -> None:
    messages = [{"role": "user", "content": SECRET_PHRASE}]
    with caplog.at_level(logging.DEBUG):
        for log_text in (False, True):
            caplog.clear()
            with BackgroundServer(create_app(models, log_text=log_text)) as running:
                answer = httpx.post(f"{running.base_url}/v1/chat/completions", timeout=60,
                                    json={"model": "base", "messages": messages, "max_tokens": 4}).json()
                httpx.post(f"{running.base_url}/v1/chat/completions", timeout=60,
                           json={"model": "base", "messages": [{"role": "assistant", "content": SECRET_PHRASE}]})
            logged = caplog.text
            assert "POST /v1/chat/completions 200" in logged, "requests are logged, as route and status"
            assert (SECRET_PHRASE in logged) is log_text
            completion = answer["choices"][0]["message"]["content"]
            if not log_text and len(completion) > 3:
                assert json.dumps(completion, ensure_ascii=False) not in logged


def _sample(exposition: str, series: str) -> float:
    """The value of one series in Prometheus' text format (0 when absent)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", exposition, flags=re.MULTILINE)
    return float(match.group(1)) if match else 0.0
