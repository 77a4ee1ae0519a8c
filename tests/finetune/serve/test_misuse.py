"""The server and `medtune serve` under misuse: oversized bodies, huge prompts beside health probes, broken adapters.

Everything here runs on the tiny base and a random LoRA adapter made on the spot, so no training run is needed.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import torch

from finetune.serve._app import BackgroundServer, create_app
from finetune.serve._engine import ChatModel
from finetune.serve._protocol import DEFAULT_MAX_BODY_BYTES, MAX_MESSAGES
from finetune.serve._weights import AdapterError

SMALL_LIMIT = 128 * 1024
LONG_TEXT = "Гемоглобин 98 г/л, ферритин снижен, назначено железо. "


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with random (non-zero) weights, saved as `medtune train` saves one."""
    from peft import LoraConfig, get_peft_model

    from finetune.models._loading import load_full_precision, load_tokenizer

    out = tmp_path_factory.mktemp("adapter") / "adapter"
    torch.manual_seed(0)
    base = load_full_precision(str(tiny_model_dir), dtype=torch.float32, device="cpu")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(out)
    load_tokenizer(str(tiny_model_dir)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> ChatModel:
    return ChatModel.load(tiny_model_dir, name="base")


@pytest.fixture(scope="module")
def small_limit_server(base: ChatModel) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app({"base": base}, max_body_bytes=SMALL_LIMIT)) as running:
        yield running


def _chat_body(content: str, size: int | None = None) -> bytes:
    """A chat request; padded with trailing spaces (still valid JSON) to exactly `size` bytes when given."""
    body = json.dumps({"model": "base", "max_tokens": 2, "messages": [{"role": "user", "content": content}]},
                      ensure_ascii=False).encode()
    if size is not None:
        assert len(body) <= size
        body += b" " * (size - len(body))
    return body


def _assert_413(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
    assert str(limit) in error["message"]


def test_a_body_over_the_limit_is_a_413_in_openai_format(small_limit_server: BackgroundServer) -> None:
    url = f"{small_limit_server.base_url}/v1/chat/completions"
    response = httpx.post(url, content=_chat_body("x", SMALL_LIMIT + 1), timeout=30,
                          headers={"content-type": "application/json"})
    _assert_413(response, SMALL_LIMIT)
    metrics = httpx.get(f"{small_limit_server.base_url}/metrics").text
    assert 'status="413"' in metrics, "refused bodies are counted like any other answer"


def test_a_chunked_body_without_content_length_is_counted_and_refused(small_limit_server: BackgroundServer) -> None:
    body = _chat_body("x" * (2 * SMALL_LIMIT))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = httpx.post(f"{small_limit_server.base_url}/v1/chat/completions", content=chunks(), timeout=30,
                          headers={"content-type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    _assert_413(response, SMALL_LIMIT)


def test_a_body_of_exactly_the_limit_is_answered(small_limit_server: BackgroundServer) -> None:
    response = httpx.post(f"{small_limit_server.base_url}/v1/chat/completions", timeout=60,
                          content=_chat_body("Гемоглобин 98 г/л?", SMALL_LIMIT),
                          headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] <= 2


def test_the_body_limit_must_be_positive(base: ChatModel) -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_app({"base": base}, max_body_bytes=0)


def test_health_answers_quickly_while_a_maximal_prompt_is_tokenized(base: ChatModel) -> None:
    """A prompt just under the default limit takes seconds to render and tokenize; that work runs in a worker
    thread, so the event loop keeps answering /health meanwhile."""
    body = _chat_body(LONG_TEXT * (DEFAULT_MAX_BODY_BYTES // len(LONG_TEXT.encode()) - 1))
    assert DEFAULT_MAX_BODY_BYTES - 1024 < len(body) <= DEFAULT_MAX_BODY_BYTES
    answer: dict[str, httpx.Response] = {}
    with BackgroundServer(create_app({"base": base})) as running, httpx.Client(base_url=running.base_url) as probe:
        assert probe.get("/health").status_code == 200  # the probe's connection is open before the load starts

        def send() -> None:
            answer["big"] = httpx.post(f"{running.base_url}/v1/chat/completions", content=body, timeout=120,
                                       headers={"content-type": "application/json"})

        sender = threading.Thread(target=send)
        sender.start()
        latencies = []
        while sender.is_alive():
            started = time.perf_counter()
            assert probe.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
        sender.join()
    assert answer["big"].status_code == 400
    assert answer["big"].json()["error"]["code"] == "context_length_exceeded", "the whole prompt was tokenized"
    assert len(latencies) >= 10, "the probes ran while the big request was being handled"
    assert max(latencies) < 0.1, f"slowest /health: {max(latencies):.3f}s"


def test_more_messages_than_the_cap_is_a_400(small_limit_server: BackgroundServer) -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * (MAX_MESSAGES // 2 + 1)
    response = httpx.post(f"{small_limit_server.base_url}/v1/chat/completions", timeout=30,
                          json={"model": "base", "messages": messages})
    assert response.status_code == 400
    assert f"at most {MAX_MESSAGES}" in response.json()["error"]["message"]


def _truncate_weights(adapter: Path) -> Path:
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return weights


def _empty_config(adapter: Path) -> Path:
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    return adapter / "adapter_config.json"


def _config_not_json(adapter: Path) -> Path:
    (adapter / "adapter_config.json").write_text("r: 8\nlora_alpha: 16\n", encoding="utf-8")
    return adapter / "adapter_config.json"


def _no_directory(adapter: Path) -> Path:
    shutil.rmtree(adapter)
    return adapter


def _no_weights(adapter: Path) -> Path:
    (adapter / "adapter_model.safetensors").unlink()
    return adapter / "adapter_model.safetensors"


def _no_config(adapter: Path) -> Path:
    (adapter / "adapter_config.json").unlink()
    return adapter / "adapter_config.json"


def _config_for_other_modules(adapter: Path) -> Path:
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "target_modules": ["no_such_proj"]}))
    return adapter


BREAKAGES: dict[str, Callable[[Path], Path]] = {
    "truncated weights": _truncate_weights,
    "empty config": _empty_config,
    "config not json": _config_not_json,
    "missing directory": _no_directory,
    "missing weights": _no_weights,
    "missing config": _no_config,
    "config for other modules": _config_for_other_modules,
}


@pytest.fixture(scope="module")
def recipe_file(recipe_factory, tiny_model_dir: Path, adapter_dir: Path, tmp_path_factory) -> Path:
    """A recipe whose own adapter is sound, written out as `medtune serve` reads one."""
    from finetune.recipe._schema import write_resolved

    root = tmp_path_factory.mktemp("serve-run")
    recipe = recipe_factory(root / "run", tiny_model_dir, eval={"tuned": "adapter"})
    shutil.copytree(adapter_dir, recipe.adapter_dir)
    return write_resolved(recipe, root)


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_serve_with_a_broken_adapter_names_the_file_and_the_fix(
    breakage: str, recipe_file: Path, adapter_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import finetune.serve
    from finetune.cli._commands import main

    # `medtune serve` looks `serve` up on the package when it runs: a server start fails the test
    monkeypatch.setattr(finetune.serve, "serve", lambda *a, **k: pytest.fail("a broken adapter was served"))
    broken = tmp_path / "kk"
    shutil.copytree(adapter_dir, broken)
    named = BREAKAGES[breakage](broken)
    assert main(["serve", str(recipe_file), "--adapter", f"kk={broken}"]) == 2
    err = capsys.readouterr().err  # loading a base for the last case also draws a progress bar here
    errors = [line for line in err.splitlines() if line.startswith("medtune serve: error: adapter 'kk'")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert str(named) in errors[0] and "medtune train" in errors[0], errors[0]


def test_loading_a_broken_adapter_fails_before_the_base_loads(tiny_model_dir: Path, adapter_dir: Path,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune.serve._engine

    broken = tmp_path / "kk"
    shutil.copytree(adapter_dir, broken)
    weights = _truncate_weights(broken)
    monkeypatch.setattr(finetune.serve._engine, "load_full_precision",
                        lambda *a, **k: pytest.fail("the base was loaded for a broken adapter"))
    with pytest.raises(AdapterError, match="truncated") as error:
        ChatModel.load(tiny_model_dir, adapter=broken)
    assert str(weights) in str(error.value)
    with pytest.raises(AdapterError, match="truncated"):
        ChatModel.load_shared(tiny_model_dir, {"kk": broken})
