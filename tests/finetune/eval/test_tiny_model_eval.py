"""The whole evaluation on the tiny trained model through medtune's own server: report files, then a cached re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.eval._run import evaluate
from finetune.eval._served import fingerprint
from finetune.recipe._eval import SUITE_FORMATS


@pytest.fixture(scope="module")
def eval_recipe(trained_recipe, recipe_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    (root / "data").symlink_to(trained_recipe.data_dir.resolve())
    (root / "adapter").symlink_to(trained_recipe.adapter_dir.resolve())
    # One bundled item per suite, the languages taking turns: every format and language, few generations.
    suites = [{"format": name, "max_items": 1, "lang": ("ru", "kk", "zh")[n % 3]}
              for n, name in enumerate(SUITE_FORMATS)]
    return recipe_factory(root, Path(trained_recipe.model.base), eval={
        "tuned": "adapter", "max_examples": 6, "max_new_tokens": 8, "concurrency": 1, "bootstrap_resamples": 200,
        "suites": suites,
    })


@pytest.fixture(scope="module")
def first_run(eval_recipe) -> dict:
    out = evaluate(eval_recipe)
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_report_covers_test_split_and_every_suite(eval_recipe, first_run: dict) -> None:
    out = eval_recipe.eval_dir
    assert first_run["endpoint"].startswith("http://127.0.0.1:")
    assert first_run["items"] == 6 + len(SUITE_FORMATS)
    assert set(first_run["tasks"]) >= {"test", *SUITE_FORMATS}
    for group, metrics in first_run["metrics"].items():
        base, tuned = metrics["base"], metrics["tuned"]
        assert base["examples"] == tuned["examples"] > 0, group
        assert base["loss"] > 0 and tuned["loss"] > 0 and base["loss"] != tuned["loss"]
        assert 0 <= base["chrf"] <= 100 and 0 <= tuned["chrf"] <= 100
    loss = next(c for c in first_run["comparisons"] if (c["task"], c["group"], c["metric"]) == ("test", "all", "loss"))
    assert loss["ci_low"] <= loss["difference"] <= loss["ci_high"]
    assert {c["metric"] for c in first_run["comparisons"]} >= {"accuracy", "icd10_top1", "entity_f1", "referral",
                                                                "language_fidelity", "chrf", "rouge_l"}
    lines = (out / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 * first_run["items"]
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| all |" in markdown and "## By task and language" in markdown
    assert (out / "report.html").read_text(encoding="utf-8").count("data:image/png;base64,") >= 8
    assert (out / "recipe.resolved.yaml").is_file()


def test_a_rerun_reuses_every_answer_and_starts_no_server(eval_recipe, first_run: dict) -> None:
    again = json.loads((evaluate(eval_recipe) / "report.json").read_text(encoding="utf-8"))
    assert "not started" in again["endpoint"]
    assert again["cache"]["misses"] == 0 and again["cache"]["hits"] == first_run["cache"]["misses"]
    assert again["comparisons"] == first_run["comparisons"]


def test_fingerprint_changes_when_weights_change(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"1234")
    before = fingerprint(tmp_path)
    weights.write_bytes(b"123456")
    assert fingerprint(tmp_path) != before
    assert fingerprint("google/medgemma-4b-it") == fingerprint("google/medgemma-4b-it")
