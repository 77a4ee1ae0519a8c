"""`medtune eval --endpoint` against any OpenAI-compatible server: names, concurrency, cache, resume, judge.

The server here is a small stand-in written for the test (no model), so every answer and request is known.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from finetune.cli import main
from finetune.eval_cache import GenerationCache, cache_key
from finetune.eval_client import APIClient, EndpointError, ServedModel
from finetune.eval_suites import load_test_split
from finetune.evaluate import CACHE_FILE, evaluate
from finetune.judge import judge_answers, parse_verdict

Reply = Callable[[str, list[dict]], str]


class StubServer:
    """OpenAI-compatible enough for evaluation: /v1/models, /v1/chat/completions and optionally /v1/score."""

    def __init__(self, models: list[str], reply: Reply, score: bool = True, delay: float = 0.02) -> None:
        self.requests: Counter[str] = Counter()
        self.fail_after: int | None = None
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        app = FastAPI()

        @app.get("/v1/models")
        def list_models() -> dict:
            return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"} for m in models]}

        @app.post("/v1/chat/completions")
        def chat(body: dict) -> JSONResponse:
            with self._lock:
                if self.fail_after is not None and sum(self.requests.values()) >= self.fail_after:
                    # A token that expires mid-run: not retried, so the run stops and must resume later.
                    return JSONResponse({"error": {"message": "token expired", "code": "invalid_api_key"}},
                                        status_code=401)
                self.requests[body["model"]] += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            time.sleep(delay)
            text = reply(body["model"], body["messages"])
            with self._lock:
                self.in_flight -= 1
            return JSONResponse({
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 2},
            })

        if score:
            @app.post("/v1/score")
            async def score(request: Request) -> dict:
                body = await request.json()
                nll = 1.0 if "tuned" in body["model"] else 3.0
                data = [{"index": i, "nll": nll * len(c[-1]["content"]), "tokens": len(c[-1]["content"])}
                        for i, c in enumerate(body["conversations"])]
                return {"object": "list", "data": data}

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> StubServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "stub server did not start"
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def model_reply(model: str, messages: list[dict]) -> str:
    """The "tuned" models pick the option written "right" and refer to a doctor; the others do neither."""
    text = messages[-1]["content"]
    options = dict(re.findall(r"^([A-Z])\) (\w+)", text, flags=re.MULTILINE))
    if options:
        pick = next(label for label, word in options.items() if (word == "right") == ("tuned" in model))
        return f"The answer is {pick}."
    return "Гемоглобин снижен, обратитесь к врачу." if "tuned" in model else "Hello there."


def judge_reply(model: str, messages: list[dict]) -> str:
    if model == "biased-judge":
        return "Both are fine. [[A]]"
    first = messages[-1]["content"].split("[Answer A]", 1)[1].split("[Answer B]", 1)[0]
    return "A refers to a doctor. [[A]]" if "врач" in first else "B refers to a doctor. [[B]]"


def _write_data(root: Path) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    rows = []
    for n, lang in enumerate(["ru", "ru", "zh", "zh"]):
        rows.append({"messages": [{"role": "user", "content": f"Анализы {n}"},
                                  {"role": "assistant", "content": "Гемоглобин снижен. Обратитесь к врачу."}],
                     "meta": {"id": f"{lang}-{n}", "lang": lang, "task": "lab_explanation"}})
    (root / "data" / "test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                              encoding="utf-8")
    exam = [{"question": f"Question {n}", "options": {"A": "wrong", "B": "right", "C": "other"}, "answer": "B"}
            for n in range(10)]
    (root / "exam.jsonl").write_text("".join(json.dumps(r) + "\n" for r in exam), encoding="utf-8")


@pytest.fixture
def make(tmp_path: Path, recipe_factory):
    def build(**eval_section):
        _write_data(tmp_path)
        settings = {"suites": [{"format": "mcq", "path": str(tmp_path / "exam.jsonl"), "lang": "en"}],
                    "concurrency": 4, "bootstrap_resamples": 200, "max_new_tokens": 16, **eval_section}
        return recipe_factory(tmp_path, tmp_path / "no-model-needed", eval=settings)
    return build


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer(["my-base", "my-tuned"], model_reply, delay=0.05) as server:
        yield server


def test_named_models_concurrency_cache_and_resume(make, stub: StubServer) -> None:
    recipe = make()
    cache = recipe.eval_dir / CACHE_FILE
    stub.fail_after = 9
    with pytest.raises(EndpointError) as error:
        evaluate(recipe, endpoint=stub.url, model="my-tuned", base_model="my-base")
    cached = len(cache.read_text(encoding="utf-8").splitlines())
    assert f"{cached} of 14 answers are cached: run again" in str(error.value) and 0 < cached <= 9
    assert "HTTP 401: token expired" in str(error.value)

    stub.fail_after = None
    asked_before = sum(stub.requests.values())
    out = evaluate(recipe, endpoint=stub.url, model="my-tuned", base_model="my-base")
    assert sum(stub.requests.values()) - asked_before == 28 - cached  # nothing cached was asked again
    assert stub.max_in_flight >= 2  # requests went out concurrently

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["models"] == {"base": f"my-base @ {stub.url}", "tuned": f"my-tuned @ {stub.url}"}
    accuracy = next(c for c in report["comparisons"] if (c["task"], c["group"], c["metric"]) ==
                    ("exam", "all", "accuracy"))
    assert (accuracy["base"], accuracy["tuned"], accuracy["significant"]) == (0.0, 1.0, True)
    assert not any(c["task"] == "exam" and c["group"] == "en" for c in report["comparisons"])  # same as "all"
    assert report["metrics"]["ru"]["tuned"]["loss"] == 1.0 and report["metrics"]["ru"]["base"]["loss"] == 3.0
    assert {"| ru |", "| zh |"} <= set(re.findall(r"\| \w+ \|", (out / "report.md").read_text(encoding="utf-8")))

    asked_before = sum(stub.requests.values())
    again = json.loads((evaluate(recipe, endpoint=stub.url, model="my-tuned", base_model="my-base")
                        / "report.json").read_text(encoding="utf-8"))
    assert sum(stub.requests.values()) == asked_before
    assert again["cache"]["misses"] == 0 and again["cache"]["hits"] == 28 + 8  # answers + scores
    assert again["comparisons"] == report["comparisons"]


def test_one_model_on_a_server_without_score(make) -> None:
    with StubServer(["llama-med"], model_reply, score=False) as server:
        out = evaluate(make(), endpoint=server.url, model="llama-med", base_model=None, use_cache=False)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["roles"] == ["tuned"] and report["comparisons"] == []
    assert report["metrics"]["all"]["tuned"]["loss"] is None
    assert any("no POST /v1/score" in note for note in report["notes"])
    assert not (out / CACHE_FILE).exists()
    assert "<img" in (out / "report.html").read_text(encoding="utf-8")


def test_judge_sees_both_orders_and_position_bias_is_reported(make, stub: StubServer) -> None:
    with StubServer(["fair-judge", "biased-judge"], judge_reply, delay=0.0) as judge:
        fair = make(judge={"endpoint": judge.url, "model": "fair-judge"})
        out = evaluate(fair, endpoint=stub.url, model="my-tuned", base_model="my-base")
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))["judge"]
        assert judge.requests["fair-judge"] == 2 * 4  # four free-text items, each judged in both orders
        assert (report["items"], report["tuned_wins"], report["inconsistent"]) == (4, 4, 0)
        assert report["preference"] == 1.0 and report["by_lang"]["zh"]["tuned_wins"] == 2
        assert {tuple(v["orders"]) for v in report["verdicts"]} == {("tuned", "tuned")}
        assert "## Judge: `fair-judge`" in (out / "report.md").read_text(encoding="utf-8")

        items = load_test_split(fair.data_dir)
        biased = ServedModel("judge", "biased-judge", "biased", lambda: APIClient(judge.url))
        report = judge_answers(biased, items, ["Hello."] * 4, ["Обратитесь к врачу."] * 4,
                               GenerationCache(None), concurrency=2, max_tokens=8, n_resamples=200)
        assert (report["tuned_wins"], report["base_wins"], report["inconsistent"]) == (0, 0, 4)
        assert report["preference"] == 0.0 and not report["significant"]
        assert parse_verdict("Reasoning [[B]] … final: [[C]]") == "C" and parse_verdict("no verdict") is None


def test_cache_keys_and_a_line_cut_by_an_interruption(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "Вопрос"}]
    key = cache_key("chat", "model-a", messages, {"max_tokens": 16, "temperature": 0.0})
    assert key == cache_key("chat", "model-a", [dict(m) for m in messages], {"temperature": 0.0, "max_tokens": 16})
    assert key != cache_key("chat", "model-b", messages, {"max_tokens": 16, "temperature": 0.0})
    assert key != cache_key("chat", "model-a", messages, {"max_tokens": 17, "temperature": 0.0})
    assert key != cache_key("chat", "model-a", [{"role": "user", "content": "Вопрос?"}],
                            {"max_tokens": 16, "temperature": 0.0})
    path = tmp_path / "cache.jsonl"
    cache = GenerationCache(path)
    cache.put(key, {"text": "Ответ"})
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "cut-sho')  # the process died mid-line
    reopened = GenerationCache(path)
    assert reopened.get(key) == {"text": "Ответ"} and len(reopened) == 1
    reopened.put("other", {"text": "x"})
    assert GenerationCache(path).get("other") == {"text": "x"}  # the cut line did not swallow the next entry


def test_command_line_against_an_endpoint(make, stub: StubServer, tmp_path: Path, capsys) -> None:
    recipe = make()
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    code = main(["eval", str(path), "--endpoint", f"{stub.url}/v1", "--model", "my-tuned", "--base-model",
                 "my-base", "--concurrency", "2"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "# Evaluation: test" in printed.out and "## Significant differences (95%)" in printed.out
    assert "Гемоглобин" not in printed.out  # answers and prompts are never printed
    assert main(["eval", str(path), "--endpoint", stub.url, "--model", "nope", "--base-model", "my-base"]) == 2
    assert "no model 'nope' served here; available: my-base, my-tuned" in capsys.readouterr().err
