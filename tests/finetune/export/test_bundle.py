"""The export bundle: merge check and 4-bit drift, sharded checkpoint, model card, manifest, vLLM LoRA layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from data_prep.files import sha256_file
from finetune.cli._commands import main
from finetune.errors import StageInputError
from finetune.export._bundle import MERGE_REPORT_NAME, export, refresh_model_card
from finetune.export._manifest import REQUIRED_FILES, verify_bundle, write_manifest
from finetune.export._vllm_lora import LORA_TENSOR, VLLM_LORA_MODULES, export_vllm_lora
from finetune.models._loading import lora_config
from finetune.recipe._schema import LoraConfig

EXPORT = {"max_shard_size": "1MB", "gguf_type": "f32", "merge_check_prompts": 2, "merge_check_new_tokens": 8}


@pytest.fixture(scope="module")
def exported_recipe(trained_recipe, recipe_factory, tmp_path_factory):
    """The session's trained adapter exported with small shards and an f32 GGUF, in a run directory of its own."""
    root = tmp_path_factory.mktemp("export-run")
    recipe = recipe_factory(root, Path(trained_recipe.model.base), export=EXPORT)
    shutil.copytree(trained_recipe.data_dir, recipe.data_dir)
    shutil.copytree(trained_recipe.adapter_dir, recipe.adapter_dir, ignore=shutil.ignore_patterns("checkpoints"))
    export(recipe)
    return recipe


@pytest.fixture(scope="module")
def bundle(exported_recipe) -> Path:
    return exported_recipe.merged_dir


def test_merge_matches_base_plus_adapter_and_4bit_drift_is_stated_and_bounded(bundle: Path) -> None:
    report = json.loads((bundle / MERGE_REPORT_NAME).read_text())
    saved, adapter_effect = report["saved_vs_base_plus_adapter"], report["adapter_effect_vs_base"]
    assert saved["max_abs_logit_diff"] < 1e-4 and saved["greedy_identical"] == "2/2"
    assert saved["top1_agreement"] == 1.0
    assert adapter_effect["max_abs_logit_diff"] > 1000 * saved["max_abs_logit_diff"], "the check can see a change"
    assert report["trained_on_4bit_base"] is True
    drift, quantization = report["drift_vs_4bit_training_model"], report["base_quantization_error"]
    # The merged model differs from the trained one by the base's 4-bit rounding, not more.
    assert 0 < drift["max_abs_logit_diff"] <= 1.5 * quantization["max_abs_logit_diff"]
    assert drift["mean_abs_logit_diff"] <= 1.5 * quantization["mean_abs_logit_diff"]
    assert drift["max_abs_logit_diff"] < 0.25 * report["logit_scale"]
    assert drift["top1_agreement"] >= 0.9
    card = (bundle / "README.md").read_text()
    assert f"max |Δlogit| {drift['max_abs_logit_diff']:.3f}" in card, "the card states the measured drift"


def test_sharded_checkpoint_loads_with_the_auto_class_and_stops_on_end_of_turn(bundle: Path, trained_recipe) -> None:
    index = json.loads((bundle / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((bundle / shard).is_file() for shard in shards)
    model = AutoModelForCausalLM.from_pretrained(bundle, dtype=torch.float32)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    tokenizer, base_tokenizer = AutoTokenizer.from_pretrained(bundle), AutoTokenizer.from_pretrained(
        trained_recipe.model.base)
    text = "Гемоглобин 98 г/л. 血红蛋白偏低。 Қан қысымы <start_of_turn>user\n"
    assert tokenizer(text)["input_ids"] == base_tokenizer(text)["input_ids"]
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == base_tokenizer.apply_chat_template(
        messages, tokenize=False)
    generation = json.loads((bundle / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") in generation["eos_token_id"]
    tokenizer_config = json.loads((bundle / "tokenizer_config.json").read_text())
    assert "vocab_file" not in tokenizer_config, "no path of the exporting machine travels with the bundle"
    assert tokenizer_config["added_tokens_decoder"]["6"]["content"] == "<end_of_turn>"
    with safe_open(str(bundle / shards[0]), "pt") as weights:
        assert not any("lora_" in key for key in weights.keys())  # noqa: SIM118


def test_the_tied_embedding_stays_one_matrix_in_the_adapter_the_merge_and_gguf(bundle: Path, trained_recipe) -> None:
    """Gemma ties lm_head to embed_tokens. medtune's adapters leave both alone, so the merged checkpoint, vLLM's
    layout and GGUF (which stores one matrix, token_embd) all hold the one the adapter was trained against."""
    adapter_config = json.loads((trained_recipe.adapter_dir / "adapter_config.json").read_text())
    assert not adapter_config["modules_to_save"] and "embed_tokens" not in str(adapter_config["target_modules"])
    with safe_open(str(trained_recipe.adapter_dir / "adapter_model.safetensors"), "pt") as weights:
        assert not [key for key in weights.keys() if "embed_tokens" in key or "lm_head" in key]  # noqa: SIM118
    config = json.loads((bundle / "config.json").read_text())
    assert config.get("tie_word_embeddings", config.get("text_config", {}).get("tie_word_embeddings")) is True
    weight_map = json.loads((bundle / "model.safetensors.index.json").read_text())["weight_map"]
    assert "lm_head.weight" not in weight_map and "model.embed_tokens.weight" in weight_map
    merged = AutoModelForCausalLM.from_pretrained(bundle, dtype=torch.float32)
    assert merged.lm_head.weight.data_ptr() == merged.model.embed_tokens.weight.data_ptr()
    base = AutoModelForCausalLM.from_pretrained(trained_recipe.model.base, dtype=torch.float32)
    assert torch.equal(merged.model.embed_tokens.weight, base.model.embed_tokens.weight), "the embedding is the base's"


def test_model_card_notice_and_evaluation_results_when_present(exported_recipe, bundle: Path) -> None:
    card = (bundle / "README.md").read_text()
    data_card = json.loads((exported_recipe.data_dir / "data_card.json").read_text())
    assert card.startswith("---\nlicense: other\nlicense_name: health-ai-developer-foundations")
    assert str(exported_recipe.model.base) in card and f"# {exported_recipe.name}" in card
    assert f"| train | {data_card['splits']['train']['examples']} |" in card
    assert "**Not a medical device.**" in card and "No evaluation report yet" in card
    assert "LoRA r=8, alpha=16" in card
    notice = (bundle / "NOTICE").read_text()
    assert "Health AI Developer Foundations" in notice and "not a medical device" in notice
    for sub in ("lora", "gguf"):
        assert (bundle / sub / "NOTICE").read_text() == notice

    report = {"examples": 6, "metrics": {
        "all": {"base": {"examples": 6, "loss": 8.41, "chrf": 3.2},
                "tuned": {"examples": 6, "loss": 7.12, "chrf": 9.8}},
        "ru": {"base": {"examples": 2, "loss": 8.5, "chrf": 2.0}, "tuned": {"examples": 2, "loss": 7.0, "chrf": 11.0}},
    }}
    exported_recipe.eval_dir.mkdir(parents=True, exist_ok=True)
    (exported_recipe.eval_dir / "report.json").write_text(json.dumps(report))
    refresh_model_card(exported_recipe)
    card = (bundle / "README.md").read_text()
    assert "| all | 6 | 8.410 | 7.120 | 3.2 | 9.8 |" in card and "| ru | 2 |" in card
    assert "No evaluation report yet" not in card
    assert verify_bundle(bundle) == [], "the refreshed card is re-signed in the manifest"


def test_manifest_lists_every_file_and_verify_finds_changes(bundle: Path, tmp_path: Path, capsys) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    assert main(["export", "--verify", str(bundle)]) == 0
    assert f"all {len(on_disk)} files match" in capsys.readouterr().out

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    shard = sorted(copy.glob("model-*.safetensors"))[1]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    (copy / "NOTICE").unlink()
    (copy / "gguf" / "extra.txt").write_text("x")
    assert main(["export", "--verify", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"{shard.name}: sha256 differs" in err
    assert "NOTICE: listed in the manifest but missing" in err
    assert "gguf/extra.txt: not in the manifest" in err
    assert main(["export", "--verify", str(tmp_path / "nowhere")]) == 1
    assert not any(".partial" in p.name for p in bundle.parent.iterdir()), "the staging directory is gone"


def test_lora_dir_is_what_vllm_loads_and_equals_the_trained_adapter(bundle: Path, trained_recipe) -> None:
    lora = bundle / "lora"
    assert sorted(p.name for p in lora.iterdir()) == ["NOTICE", "adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((lora / "adapter_config.json").read_text())
    # What vLLM's PEFTHelper requires and refuses.
    assert {"r", "lora_alpha", "target_modules"} <= set(config)
    assert not config["modules_to_save"] and not config["use_dora"] and config["bias"] == "none"
    with safe_open(str(lora / "adapter_model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    for name in names:  # vLLM parses base_model.model.<module>.lora_A|lora_B.weight
        match = LORA_TENSOR.match(name)
        assert match and match["module"].rsplit(".", 1)[-1] in VLLM_LORA_MODULES, name
    base = AutoModelForCausalLM.from_pretrained(trained_recipe.model.base, dtype=torch.float32)
    batch = {"input_ids": torch.tensor([[2, 5, 3326, 3055, 2888, 2868, 2546, 400, 401]])}
    with torch.no_grad():
        original = PeftModel.from_pretrained(base, str(trained_recipe.adapter_dir)).eval()
        expected = original(**batch).logits
        original.unload()
        got = PeftModel.from_pretrained(base, str(lora)).eval()(**batch).logits
    assert torch.equal(expected, got)


def test_lora_export_leaves_out_the_vision_tower_and_refuses_what_vllm_refuses(
    tiny_image_text_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_image_text_dir)
    adapted = get_peft_model(model, lora_config(model, LoraConfig(r=4, alpha=8, language_model_only=False)))
    adapted.save_pretrained(tmp_path / "adapter")
    result = export_vllm_lora(tmp_path / "adapter", tmp_path / "lora", "google/medgemma-4b-it")
    assert result["left_out_non_language_model_tensors"] > 0
    with safe_open(str(tmp_path / "lora" / "adapter_model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert names and all("language_model" in n for n in names) and result["tensors"] == len(names)
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "google/medgemma-4b-it"

    raw = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({**raw, "modules_to_save": ["lm_head"]}))
    with pytest.raises(StageInputError, match=r"modules_to_save \(lm_head\) cannot be loaded by vLLM"):
        export_vllm_lora(tmp_path / "adapter", tmp_path / "lora2", "x")


def test_modelfile_uses_the_gemma_template_and_points_at_the_gguf(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    gguf = manifest["formats"]["gguf"]
    modelfile = (bundle / gguf["modelfile"]).read_text()
    assert f"FROM ./{Path(gguf['file']).name}\n" in modelfile and (bundle / gguf["file"]).is_file()
    assert 'PARAMETER stop "<end_of_turn>"' in modelfile
    assert "<start_of_turn>user" in modelfile and "<start_of_turn>model" in modelfile
    assert "$system" in modelfile, "a system message is folded into the first user turn, as Gemma's template does"
    assert 'LICENSE """This model is a derivative of' in modelfile


def test_gguf_loads_in_llama_cpp_and_predicts_like_transformers(bundle: Path, exported_recipe) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    manifest = json.loads((bundle / "manifest.json").read_text())
    llm = llama_cpp.Llama(model_path=str(bundle / manifest["formats"]["gguf"]["file"]), n_ctx=1024,
                          logits_all=True, n_threads=2, verbose=False)
    assert llm.metadata["tokenizer.chat_template"] == (bundle / "chat_template.jinja").read_text()
    tokenizer = AutoTokenizer.from_pretrained(bundle)
    model = AutoModelForCausalLM.from_pretrained(bundle, dtype=torch.float32).eval()
    rows = [json.loads(line) for line in (exported_recipe.data_dir / "test.jsonl").read_text().splitlines()[:3]]
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == ids, "same tokens as transformers"
        llm.reset()
        llm.eval(ids)
        from_llama = torch.tensor(llm.scores[: len(ids)])
        with torch.no_grad():
            from_transformers = model(torch.tensor([ids])).logits[0]
        assert torch.equal(from_llama.argmax(-1), from_transformers.argmax(-1)), "same next token everywhere"
        assert (from_llama - from_transformers).abs().max() < 0.05
    llm.close()


GO_RENDER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	src, _ := os.ReadFile(os.Args[1])
	var conversations [][]Message
	raw, _ := os.ReadFile(os.Args[2])
	if err := json.Unmarshal(raw, &conversations); err != nil { panic(err) }
	tpl := template.Must(template.New("modelfile").Parse(string(src)))
	for _, messages := range conversations {
		if err := tpl.Execute(os.Stdout, struct{ Messages []Message }{messages}); err != nil { panic(err) }
		os.Stdout.WriteString("\\x00")
	}
}
"""


def test_ollama_template_renders_like_the_gemma_chat_template(bundle: Path, tmp_path: Path) -> None:
    """Rendered by Go's text/template, the engine Ollama's TEMPLATE uses; skipped where Go is not installed."""
    import re
    import subprocess

    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed")
    modelfile = (bundle / "gguf" / "Modelfile").read_text()
    (tmp_path / "template.txt").write_text(re.search(r'TEMPLATE """(.*?)"""', modelfile, re.S).group(1))
    conversations = [
        [{"role": "user", "content": "Гемоглобин 98 г/л?"}],
        [{"role": "system", "content": "Сіз дәрігерсіз."}, {"role": "user", "content": "Қан қысымы 150/95."}],
        [{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
         {"role": "user", "content": "血红蛋白?"}],
    ]
    (tmp_path / "conversations.json").write_text(json.dumps(
        [[{"Role": m["role"], "Content": m["content"]} for m in c] for c in conversations], ensure_ascii=False))
    (tmp_path / "main.go").write_text(GO_RENDER)
    result = subprocess.run([go, "run", "main.go", "template.txt", "conversations.json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=True)
    rendered = result.stdout.split("\x00")[:-1]
    tokenizer = AutoTokenizer.from_pretrained(bundle)
    # llama.cpp adds <bos> itself (the GGUF's add_bos_token); Gemma's template writes it into the text.
    expected = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True).removeprefix("<bos>")
                for c in conversations]
    assert rendered == expected


def _small_bundle(root: Path) -> Path:
    """A bundle with the required files and placeholder weights: enough for the manifest checks, no model."""
    root.mkdir(parents=True)
    for name in (*REQUIRED_FILES, "model.safetensors"):
        (root / name).write_text(f"{name}\n", encoding="utf-8")
    write_manifest(root)
    return root


@pytest.mark.parametrize("where", ["relative", "absolute", "link"])
def test_verify_refuses_manifest_entries_outside_the_bundle(tmp_path: Path, where: str, capsys) -> None:
    """An entry that leads out of the bundle is a problem, even when the file it names has the listed hash."""
    bundle = _small_bundle(tmp_path / "deep" / "bundle")
    outside = tmp_path / "hostname"
    outside.write_text("clinic-host\n", encoding="utf-8")
    name = {"relative": "../../hostname", "absolute": str(outside), "link": "hostname"}[where]
    if where == "link":
        (bundle / "hostname").symlink_to(outside)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_file(outside), "bytes": outside.stat().st_size}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert verify_bundle(bundle) == [f"{name}: outside the bundle (an absolute path, '..' or a link leading out); a "
                                     "manifest lists only files inside its bundle, so this one was altered: re-export "
                                     "or ask the sender"]
    assert main(["export", "--verify", str(bundle)]) == 1
    assert f"{name}: outside the bundle" in capsys.readouterr().err


def test_verify_passes_a_small_intact_bundle_and_names_a_malformed_entry(tmp_path: Path) -> None:
    bundle = _small_bundle(tmp_path / "bundle")
    assert verify_bundle(bundle) == []
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["NOTICE"] = "not a mapping"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert verify_bundle(bundle) == ["NOTICE: manifest entry is not a mapping with sha256 and bytes"]
