"""The inference class and the OpenAI-compatible API, exercised with the real `openai` client."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from safetensors.torch import load_file, save_file

from finetune.serve._app import BackgroundServer, create_app
from finetune.serve._engine import ChatModel
from finetune.serve._weights import combined_fingerprint, weights_fingerprint

CONVERSATIONS = [
    [{"role": "user", "content": "Гемоглобин 98 г/л — это нормально?"}],
    [{"role": "system", "content": "Сіз дәрігерсіз."}, {"role": "user", "content": "Қан қысымы 150/95."}],
    [{"role": "user", "content": "血红蛋白偏低是什么意思？请详细解释一下可能的原因和需要做的检查。"}],
]


@pytest.fixture(scope="module")
def models(trained_recipe) -> dict[str, ChatModel]:
    return {
        "base": ChatModel.load(trained_recipe.model.base, name="base"),
        "tuned": ChatModel.load(trained_recipe.model.base, adapter=trained_recipe.adapter_dir, name="tuned"),
    }


@pytest.fixture(scope="module")
def server(models) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(models)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def test_batched_greedy_generation_equals_one_at_a_time(models) -> None:
    model = models["tuned"]
    batched = model.generate(CONVERSATIONS, max_new_tokens=12)
    alone = [model.generate([c], max_new_tokens=12)[0] for c in CONVERSATIONS]
    assert [c.text for c in batched] == [c.text for c in alone]
    for completion in batched:
        assert completion.completion_tokens <= 12
        assert (completion.finish_reason == "length") == (completion.completion_tokens == 12)


def test_sampling_is_reproducible_with_a_seed(models) -> None:
    model = models["base"]
    first = model.generate(CONVERSATIONS[:1], max_new_tokens=10, temperature=1.0, seed=7)[0].text
    again = model.generate(CONVERSATIONS[:1], max_new_tokens=10, temperature=1.0, seed=7)[0].text
    assert first == again


def test_sampling_without_a_seed_varies(models) -> None:
    answers = {models["base"].chat(CONVERSATIONS[0], max_new_tokens=10, temperature=1.0) for _ in range(4)}
    assert len(answers) > 1


def test_seeded_answers_do_not_depend_on_what_runs_beside_them(models) -> None:
    """Two separately loaded models decode in two batching threads at once, several seeded requests per batch:
    each answer must equal the one the same request gets alone."""
    jobs = [(name, seed, CONVERSATIONS[seed % len(CONVERSATIONS)]) for name in ("base", "tuned") for seed in range(5)]
    with BackgroundServer(create_app(models, batch_wait_ms=100)) as running:

        def ask(job: tuple[str, int, list]) -> str:
            name, seed, messages = job
            body = {"model": name, "messages": messages, "max_tokens": 8, "temperature": 1.0, "seed": seed}
            response = httpx.post(f"{running.base_url}/v1/chat/completions", json=body, timeout=60)
            assert response.status_code == 200, response.text
            return response.json()["choices"][0]["message"]["content"]

        alone = [ask(job) for job in jobs]
        with ThreadPoolExecutor(len(jobs)) as pool:
            together = list(pool.map(ask, jobs))
        metrics = httpx.get(f"{running.base_url}/metrics").text
    assert together == alone
    assert len(set(alone)) > len(jobs) // 2, "the seeds make a difference, so the comparison means something"
    for name in ("base", "tuned"):
        batches = _sample(metrics, f'medtune_generation_batch_size_count{{model="{name}"}}')
        assert batches < len(jobs), f"some of {name}'s concurrent seeded requests shared a batch"


def test_adapter_changes_the_scores(models) -> None:
    conversation = [*CONVERSATIONS[0], {"role": "assistant", "content": "Это ниже нормы."}]
    base, tuned = models["base"].score([conversation])[0], models["tuned"].score([conversation])[0]
    assert base.tokens == tuned.tokens > 0
    assert base.nll != pytest.approx(tuned.nll)


def test_server_binds_loopback_by_default() -> None:
    from finetune.recipe._schema import ServeConfig

    assert ServeConfig().host == "127.0.0.1"


def test_models_and_health(client: openai.OpenAI, server: BackgroundServer) -> None:
    assert sorted(m.id for m in client.models.list().data) == ["base", "tuned"]
    health = httpx.get(f"{server.base_url}/health").json()
    assert health == {"status": "ok", "models": ["base", "tuned"]}


def test_chat_completion_with_the_openai_client(client: openai.OpenAI, models) -> None:
    response = client.chat.completions.create(model="tuned", messages=CONVERSATIONS[1], max_tokens=8)
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == models["tuned"].chat(CONVERSATIONS[1], max_new_tokens=8)
    assert response.usage.completion_tokens <= 8
    assert response.usage.prompt_tokens == models["tuned"].count_prompt_tokens(CONVERSATIONS[1])
    assert choice.finish_reason in ("stop", "length")


def test_model_field_routes_to_that_model(server: BackgroundServer, models) -> None:
    conversation = [*CONVERSATIONS[0], {"role": "assistant", "content": "Это ниже нормы."}]
    served = {
        name: httpx.post(f"{server.base_url}/v1/score", json={"model": name, "conversations": [conversation]})
        .json()["data"][0]["nll"]
        for name in ("base", "tuned")
    }
    for name, nll in served.items():
        assert nll == pytest.approx(models[name].score([conversation])[0].nll, rel=1e-5)
    assert served["base"] != pytest.approx(served["tuned"])


def test_unknown_model_is_a_404_in_openai_format(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="gpt-4", messages=CONVERSATIONS[0])
    assert error.value.body["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "messages is empty"),
        ([{"role": "assistant", "content": "hi"}], "roles must alternate"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "roles must alternate"),
    ],
)
def test_bad_messages_are_400_not_500(client: openai.OpenAI, messages: list, fragment: str) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="base", messages=messages)
    assert fragment in error.value.body["message"]


def test_input_longer_than_context_is_a_400(client: openai.OpenAI, models) -> None:
    too_long = models["base"].context_length + 10
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="base", messages=CONVERSATIONS[0], max_tokens=too_long)
    assert error.value.body["code"] == "context_length_exceeded"


def test_score_endpoint_matches_the_class(server: BackgroundServer, models) -> None:
    conversation = [*CONVERSATIONS[2], {"role": "assistant", "content": "说明可能贫血。"}]
    body = httpx.post(f"{server.base_url}/v1/score", json={"model": "tuned", "conversations": [conversation]}).json()
    expected = models["tuned"].score([conversation])[0]
    assert body["data"][0]["tokens"] == expected.tokens
    assert body["data"][0]["nll"] == pytest.approx(expected.nll, rel=1e-5)


def test_bearer_token_is_enforced(models) -> None:
    with BackgroundServer(create_app(models, api_key="s3cret")) as running:
        denied = openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            denied.models.list()
        allowed = openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="s3cret", max_retries=0)
        assert len(allowed.models.list().data) == 2
        assert httpx.get(f"{running.base_url}/health").status_code == 200


def test_adapter_model_loads_tokenizer_from_adapter_dir(trained_recipe) -> None:
    assert (Path(trained_recipe.adapter_dir) / "tokenizer_config.json").is_file()


def _sample(exposition: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", exposition, flags=re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _perturbed_copy(adapter: Path, target: Path, delta: float) -> Path:
    """A copy of the adapter with every LoRA B matrix shifted by `delta` (the same config, other weights)."""
    shutil.copytree(adapter, target, ignore=shutil.ignore_patterns("checkpoints"))
    tensors = load_file(target / "adapter_model.safetensors")
    save_file({k: v + delta if "lora_B" in k else v for k, v in tensors.items()},
              target / "adapter_model.safetensors", metadata={"format": "pt"})
    return target


def test_models_list_a_fingerprint_of_the_weights_that_answer(server: BackgroundServer, trained_recipe) -> None:
    entries = {m["id"]: m for m in httpx.get(f"{server.base_url}/v1/models").json()["data"]}
    base = weights_fingerprint(Path(trained_recipe.model.base).glob("*.safetensors"))
    adapter_dir = Path(trained_recipe.adapter_dir)
    adapter = weights_fingerprint([adapter_dir / "adapter_model.safetensors", adapter_dir / "adapter_config.json"])
    assert entries["base"]["fingerprint"] == base
    assert entries["tuned"]["fingerprint"] == combined_fingerprint(base, adapter)
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["fingerprint"]) for e in entries.values())


def test_fingerprint_changes_exactly_when_the_weights_do(trained_recipe, tmp_path: Path) -> None:
    base, adapter = trained_recipe.model.base, Path(trained_recipe.adapter_dir)
    same = tmp_path / "same"
    shutil.copytree(adapter, same, ignore=shutil.ignore_patterns("checkpoints"))
    other = _perturbed_copy(adapter, tmp_path / "other", 0.05)
    served = ChatModel.load_shared(base, {"tuned": adapter, "same": same, "other": other})
    prints = {name: model.fingerprint for name, model in served.items()}
    assert prints["same"] == prints["tuned"], "the same weights in another directory"
    assert len({prints["base"], prints["tuned"], prints["other"]}) == 3
    conversation = [*CONVERSATIONS[0], {"role": "assistant", "content": "Это ниже нормы."}]
    assert served["other"].score([conversation])[0].nll != pytest.approx(served["tuned"].score([conversation])[0].nll)

    before = ChatModel.load(base, adapter=same).fingerprint
    shutil.rmtree(same)
    _perturbed_copy(adapter, same, 0.05)  # the directory re-written with other weights, then reloaded
    after = ChatModel.load(base, adapter=same).fingerprint
    assert before == prints["tuned"] and after != before and after == prints["other"]
