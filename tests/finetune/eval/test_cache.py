"""The evaluation cache against medtune's own server: what a new checkpoint behind the same URL does to it.

Two tiny models with different seeds stand for the checkpoint before and after retraining; both are served
under the same names on the same port, one after the other, with a bearer token as a clinic would set it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from finetune.eval._client import APIClient, EndpointError
from finetune.eval._run import evaluate
from finetune.eval._served import endpoint_identity
from finetune.models._tiny import build_tiny_model
from finetune.recipe._schema import TinyModelConfig
from finetune.serve._app import BackgroundServer, create_app
from finetune.serve._engine import ChatModel

KEY = "s3cret"


@pytest.fixture(scope="module")
def retrained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-retrained") / "model", TinyModelConfig(seed=1))


@pytest.fixture
def recipe(tmp_path: Path, tiny_model_dir: Path, recipe_factory, monkeypatch):
    monkeypatch.setattr("finetune.eval._run.render_html", lambda report: "")  # figures are not under test here
    (tmp_path / "data").mkdir()
    rows = [{"messages": [{"role": "user", "content": f"Анализы {n}"},
                          {"role": "assistant", "content": "Гемоглобин снижен. Обратитесь к врачу."}],
             "meta": {"id": f"ru-{n}", "lang": "ru", "task": "lab_explanation"}} for n in range(3)]
    (tmp_path / "data" / "test.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return recipe_factory(tmp_path, tiny_model_dir, eval={"max_new_tokens": 4, "concurrency": 2,
                                                          "bootstrap_resamples": 100})


def _server(weights: Mapping[str, Path], port: int = 0) -> BackgroundServer:
    models = {name: ChatModel.load(path, name=name) for name, path in weights.items()}
    return BackgroundServer(create_app(models, api_key=KEY), port=port)


def _run(recipe, url: str, api_key: str | None = KEY) -> dict:
    out = evaluate(recipe, endpoint=url, api_key=api_key, model="tuned", base_model="base")
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _losses(report: dict) -> tuple[float, float]:
    return report["metrics"]["all"]["base"]["loss"], report["metrics"]["all"]["tuned"]["loss"]


def test_a_new_checkpoint_at_the_same_url_is_asked_again(recipe, tiny_model_dir: Path, retrained_dir: Path) -> None:
    with _server({"base": tiny_model_dir, "tuned": tiny_model_dir}) as server:
        url = server.base_url
        first = _run(recipe, url)
        asked = first["cache"]["misses"]
        assert asked == 2 * (3 + 3) and first["cache"]["hits"] == 0  # answers and scores of both models
        assert _run(recipe, url)["cache"]["misses"] == 0  # the same weights: every answer reused

    with _server({"base": tiny_model_dir, "tuned": retrained_dir}, port=int(url.rsplit(":", 1)[1])) as server:
        assert server.base_url == url
        second = _run(recipe, url)
        assert second["cache"]["misses"] == second["cache"]["hits"] == asked // 2  # tuned asked again, base reused
        assert set(second["cache"]["keyed_by"].values()) <= {"weights fingerprint", "probe answer"}
        assert _losses(second)[0] == _losses(first)[0] and _losses(second)[1] != _losses(first)[1]

        with pytest.raises(EndpointError, match=f"^{url}: the server refused the API key .*HTTP 401.*--api-key-env"):
            _run(recipe, url, api_key="wrong")
        with pytest.raises(EndpointError, match="needs an API key and none was given"):
            _run(recipe, url, api_key=None)
    with pytest.raises(EndpointError, match=f"^{url}: cannot connect"):
        _run(recipe, url)


def test_the_same_weights_under_other_names_are_identified_alike(tiny_model_dir: Path, retrained_dir: Path) -> None:
    with _server({"a": tiny_model_dir, "b": tiny_model_dir, "c": retrained_dir}) as server:
        client = APIClient(server.base_url, KEY)
        a, how = endpoint_identity(client, "a")
        b, _ = endpoint_identity(client, "b")
        c, _ = endpoint_identity(client, "c")
        tagged, tag_how = endpoint_identity(client, "a", cache_tag="run-7")
    assert how in ("weights fingerprint", "probe answer")
    assert a.split("#", 2)[2] == b.split("#", 2)[2] != c.split("#", 2)[2]  # same weights under other names
    assert tagged.endswith("#tag:run-7") and "cache tag 'run-7'" in tag_how
