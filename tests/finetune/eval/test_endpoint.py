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
import yaml
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from finetune.cli._commands import main
from finetune.eval._cache import GenerationCache, cache_key
from finetune.eval._client import PROBE_PROMPT, APIClient, EndpointError, ServedModel
from finetune.eval._judge import judge_answers, parse_verdict
from finetune.eval._run import CACHE_FILE, evaluate
from finetune.eval._suites import load_test_split
from finetune.serve import BackgroundServer

Reply = Callable[[str, list[dict]], str]


class StubServer:
    """OpenAI-compatible enough for evaluation: /v1/models, /v1/chat/completions and optionally /v1/score.

    `reply`, `fingerprints` (published in /v1/models, as medtune's server does), `logprob` and `loss` may be
    changed while it runs: that is a new checkpoint behind the same URL. Identity probes are counted apart.
    """

    def __init__(self, models: list[str], reply: Reply, score: bool = True, delay: float = 0.02, *,
                 api_key: str | None = None, logprobs: bool = True) -> None:
        self.reply = reply
        self.fingerprints: dict[str, str] = {}
        self.logprob: dict[str, float] = {}
        self.loss: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        self.probes: Counter[str] = Counter()
        self.fail_after: int | None = None
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        app = FastAPI()

        @app.middleware("http")
        async def bearer(request: Request, call_next: Callable) -> Response:
            if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
                return JSONResponse({"error": {"message": "missing or wrong bearer token",
                                               "code": "invalid_api_key"}}, status_code=401)
            return await call_next(request)

        @app.get("/v1/models")
        def list_models() -> dict:
            data = [{"id": m, "object": "model", "owned_by": "test",
                     **({"fingerprint": self.fingerprints[m]} if m in self.fingerprints else {})} for m in models]
            return {"object": "list", "data": data}

        @app.post("/v1/chat/completions")
        def chat(body: dict) -> JSONResponse:
            if body["messages"] == PROBE_PROMPT:
                return self._probe_answer(body, logprobs)
            with self._lock:
                if self.fail_after is not None and sum(self.requests.values()) >= self.fail_after:
                    # A token that expires mid-run: not retried, so the run stops and must resume later.
                    return JSONResponse({"error": {"message": "token expired", "code": "invalid_api_key"}},
                                        status_code=401)
                self.requests[body["model"]] += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            time.sleep(delay)
            text = self.reply(body["model"], body["messages"])
            with self._lock:
                self.in_flight -= 1
            return _completion(body["model"], text)

        if score:
            @app.post("/v1/score")
            async def score(request: Request) -> dict:
                body = await request.json()
                nll = self.loss.get(body["model"], 1.0 if "tuned" in body["model"] else 3.0)
                data = [{"index": i, "nll": nll * len(c[-1]["content"]), "tokens": len(c[-1]["content"])}
                        for i, c in enumerate(body["conversations"])]
                return {"object": "list", "data": data}

        self.background = BackgroundServer(app)

    def _probe_answer(self, body: dict, logprobs: bool) -> JSONResponse:
        """The model's own greedy answer, with per-word logprobs where this server gives them (else a 400)."""
        if body.get("logprobs") and not logprobs:
            return JSONResponse({"error": {"message": "logprobs is not supported"}}, status_code=400)
        with self._lock:
            self.probes[body["model"]] += 1
        text = self.reply(body["model"], body["messages"])
        content = [{"token": word, "logprob": self.logprob.get(body["model"], -0.52), "bytes": None,
                    "top_logprobs": []} for word in text.split()]
        return _completion(body["model"], text, {"content": content} if body.get("logprobs") else None)

    def __enter__(self) -> StubServer:
        self.background.__enter__()
        return self

    @property
    def url(self) -> str:
        return self.background.base_url

    def __exit__(self, *exc: object) -> None:
        self.background.__exit__(*exc)


def _completion(model: str, text: str, logprobs: dict | None = None) -> JSONResponse:
    return JSONResponse({
        "id": "x", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                     "logprobs": logprobs}],
        "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 2},
    })


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
    if "[Answer A]" not in messages[-1]["content"]:
        return "Not a comparison."
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


@pytest.fixture
def no_figures(monkeypatch) -> None:
    """The cache tests read report.json; drawing report.html's figures would only slow them down."""
    monkeypatch.setattr("finetune.eval._run.render_html", lambda report: "")


def _run(recipe, url: str, **options) -> dict:
    out = evaluate(recipe, endpoint=url, model="my-tuned", base_model="my-base", **options)
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _tuned_answers_like_base(model: str, messages: list[dict]) -> str:
    """A new checkpoint behind the same name: the tuned model now answers as the base did."""
    return model_reply("my-base" if model == "my-tuned" else model, messages)


def _exam_accuracy(report: dict) -> float:
    return report["tasks"]["exam"]["groups"]["all"]["tuned"]["accuracy"]


@pytest.mark.usefixtures("no_figures")
def test_published_weights_fingerprint_decides_what_is_reused(make, stub: StubServer) -> None:
    recipe = make()
    stub.fingerprints.update({"my-base": "b" * 64, "my-tuned": "1" * 64})
    first = _run(recipe, stub.url)
    assert first["cache"]["keyed_by"] == {"base": "weights fingerprint", "tuned": "weights fingerprint"}
    assert (first["metrics"]["all"]["tuned"]["loss"], _exam_accuracy(first)) == (1.0, 1.0)
    asked = stub.requests.copy()
    assert _run(recipe, stub.url)["cache"]["misses"] == 0 and stub.requests == asked  # same weights: reused

    stub.fingerprints["my-tuned"] = "2" * 64  # other weights behind the same URL and name
    stub.loss["my-tuned"], stub.reply = 2.5, _tuned_answers_like_base
    third = _run(recipe, stub.url)
    assert stub.requests["my-tuned"] - asked["my-tuned"] == 14 and stub.requests["my-base"] == asked["my-base"]
    assert (third["metrics"]["all"]["tuned"]["loss"], _exam_accuracy(third)) == (2.5, 0.0)
    assert third["cache"]["hits"] == 14 + 4 and not stub.probes  # the base's answers and scores; no probe needed


@pytest.mark.usefixtures("no_figures")
def test_probe_answer_identifies_weights_where_no_fingerprint_is_published(make, stub: StubServer) -> None:
    recipe = make()
    assert _run(recipe, stub.url)["cache"]["keyed_by"] == {"base": "probe answer", "tuned": "probe answer"}
    asked = stub.requests.copy()
    stub.logprob["my-tuned"] = -0.521  # numeric noise between runs of the same weights
    assert _run(recipe, stub.url)["cache"]["misses"] == 0 and stub.requests == asked
    assert stub.probes == {"my-base": 2, "my-tuned": 2}  # each run probes before it reads the cache

    stub.logprob["my-tuned"] = -1.3  # the same greedy text, other weights
    _run(recipe, stub.url)
    assert stub.requests["my-tuned"] - asked["my-tuned"] == 14 and stub.requests["my-base"] == asked["my-base"]
    asked = stub.requests.copy()
    stub.reply = _tuned_answers_like_base
    assert _exam_accuracy(_run(recipe, stub.url)) == 0.0
    assert stub.requests["my-tuned"] - asked["my-tuned"] == 14 and stub.requests["my-base"] == asked["my-base"]


@pytest.mark.usefixtures("no_figures")
def test_probe_on_a_server_that_refuses_logprobs_uses_text_and_score(make) -> None:
    recipe = make()
    with StubServer(["llama-med"], model_reply, delay=0.0, logprobs=False) as server:
        def run() -> dict:
            out = evaluate(recipe, endpoint=server.url, model="llama-med", base_model=None)
            return json.loads((out / "report.json").read_text(encoding="utf-8"))

        assert run()["cache"]["misses"] == 14 + 4  # answers and scores
        assert run()["cache"]["misses"] == 0 and server.probes["llama-med"] == 2
        server.loss["llama-med"] = 2.0  # the same greedy text, but /v1/score tells the weights apart
        assert run()["cache"]["misses"] == 14 + 4
        server.reply = lambda model, messages: "Другой ответ."
        assert run()["cache"]["misses"] == 14 + 4  # answers and scores


def _recipe_file(recipe, tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.usefixtures("no_figures")
def test_cache_tag_names_the_checkpoint_instead_of_a_probe(make, stub: StubServer, tmp_path: Path) -> None:
    path = _recipe_file(make(), tmp_path)
    args = ["eval", str(path), "--endpoint", stub.url, "--model", "my-tuned", "--base-model", "my-base"]
    assert main([*args, "--cache-tag", "run-1"]) == 0
    asked = sum(stub.requests.values())
    stub.reply = _tuned_answers_like_base  # the user says run-1 still: the tag is trusted
    assert main([*args, "--cache-tag", "run-1"]) == 0
    assert sum(stub.requests.values()) == asked and not stub.probes
    assert main([*args, "--cache-tag", "run-2"]) == 0
    assert sum(stub.requests.values()) == asked + 28
    report = json.loads((make().eval_dir / "report.json").read_text(encoding="utf-8"))
    assert report["cache"]["keyed_by"]["tuned"] == "cache tag 'run-2'" and _exam_accuracy(report) == 0.0

    _run(make(cache_tag="run-2"), stub.url)  # eval.cache_tag in the recipe does the same
    assert sum(stub.requests.values()) == asked + 28 and not stub.probes


@pytest.mark.usefixtures("no_figures")
def test_refused_key_or_stopped_server_fails_even_with_every_answer_cached(
    make, tmp_path: Path, capsys, monkeypatch
) -> None:
    recipe = make()
    path = _recipe_file(recipe, tmp_path)
    with StubServer(["my-base", "my-tuned"], model_reply, delay=0.0, api_key="s3cret") as server:
        args = ["eval", str(path), "--endpoint", server.url, "--model", "my-tuned", "--base-model", "my-base"]
        monkeypatch.setenv("EVAL_TOKEN", "s3cret")
        assert main([*args, "--api-key-env", "EVAL_TOKEN"]) == 0
        asked, probed = sum(server.requests.values()), server.probes.copy()
        capsys.readouterr()
        monkeypatch.setenv("EVAL_TOKEN", "wrong")
        assert main([*args, "--api-key-env", "EVAL_TOKEN"]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"medtune eval: error: {server.url}: the server refused the API key (HTTP 401")
        assert "set --api-key-env" in error and "Traceback" not in error
        assert main(args) == 2
        assert "needs an API key and none was given" in capsys.readouterr().err
        assert (sum(server.requests.values()), server.probes) == (asked, probed)  # refused before anything was asked
        url = server.url
    with pytest.raises(EndpointError, match=f"^{re.escape(url)}: cannot connect"):
        evaluate(recipe, endpoint=url, api_key="s3cret", model="my-tuned", base_model="my-base")
