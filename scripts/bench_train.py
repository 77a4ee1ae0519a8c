"""QLoRA training speed and memory: medtune's settings against a baseline configured like Google's notebook.

On a GPU: builds models of the exact MedGemma-4B and 27B-text shapes with random 4-bit weights (no download),
runs QLoRA steps at each sequence length and prints tokens/s, peak `torch.cuda.max_memory_allocated` and the
planner's estimate side by side, for medtune (chunked log-prob loss on answer tokens) and for the baseline
(full logits, prompt tokens in the loss, no loss chunking), so the ratios come from one run.
On CPU: the tiny model, packed versus padded batches of the bundled demo data, tokens/s.

    python scripts/bench_train.py [--models 4b,27b] [--seq 1024,2048] [--steps 4] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.models import medgemma_4b, medgemma_27b_text
from finetune.train import Shape, TrainShape, estimate

MODELS = {"4b": medgemma_4b, "27b": medgemma_27b_text}
GIB = 1024**3


def _peft_model(config):  # type: ignore[no-untyped-def]
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from finetune.models import build_random_qlora_base, lora_config
    from finetune.recipe import LoraConfig

    base = build_random_qlora_base(config, device="cuda")
    if hasattr(base, "activation_checkpointing_enable"):  # the name since transformers 5.24
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    base.enable_input_require_grads()
    add_fused_lm_head(base, outputs=("log_probs",))
    return get_peft_model(base, lora_config(base, LoraConfig(r=16, alpha=32, dropout=0.0)))


def _step(model, input_ids: torch.Tensor, labels: torch.Tensor, chunked: bool) -> torch.Tensor:  # type: ignore[no-untyped-def]
    extra = {"token_type_ids": torch.zeros_like(input_ids)} if hasattr(model.config, "vision_config") else {}
    if chunked:
        out = model(input_ids=input_ids, labels=labels, fused_lm_head=True, **extra)
        mask = labels[:, 1:] != -100
        loss = -(out.log_probs.sum() / mask.sum())
    else:
        loss = model(input_ids=input_ids, labels=labels, **extra).loss
    loss.backward()
    return loss.detach()


def bench_gpu(models: list[str], seqs: list[int], steps: int) -> list[dict]:
    import bitsandbytes as bnb

    rows = []
    for name in models:
        config = MODELS[name]()
        shape = Shape.from_config(config)
        torch.cuda.empty_cache()
        started = time.perf_counter()
        model = _peft_model(config)
        build_s = time.perf_counter() - started
        weights_gib = torch.cuda.memory_allocated() / GIB
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = bnb.optim.PagedAdamW8bit(params, lr=1e-5)
        model.train()
        for seq in seqs:
            for mode in ("medtune", "baseline"):
                chunked = mode == "medtune"
                generator = torch.Generator(device="cuda").manual_seed(0)
                input_ids = torch.randint(10, 200_000, (1, seq), device="cuda", generator=generator)
                labels = input_ids.clone()
                if chunked:
                    labels[:, : seq // 2] = -100  # answers only: the prompt half is not trained on
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                try:
                    for _ in range(2):  # warm-up: optimizer state appears on the first step
                        _step(model, input_ids, labels, chunked)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                    torch.cuda.synchronize()
                    started = time.perf_counter()
                    for _ in range(steps):
                        loss = _step(model, input_ids, labels, chunked)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                    torch.cuda.synchronize()
                    elapsed = time.perf_counter() - started
                    peak = torch.cuda.max_memory_allocated() / GIB
                    error = None
                except torch.cuda.OutOfMemoryError as exc:
                    elapsed, peak, loss, error = float("nan"), float("nan"), torch.tensor(float("nan")), str(exc)[:80]
                    optimizer.zero_grad(set_to_none=True)
                plan = estimate(shape, TrainShape(seq_len=seq, chunked_loss=chunked,
                                                  loss_fraction=0.5 if chunked else 1.0))
                row = {
                    "model": name, "seq_len": seq, "mode": mode, "tokens_per_s": seq * steps / elapsed,
                    "peak_gib": peak, "planned_gib": plan.total_gib, "plan_error": plan.total_gib / peak - 1,
                    "weights_gib_measured": weights_gib, "plan": plan.as_dict(), "loss": float(loss),
                    "build_s": build_s, "error": error,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        del model, optimizer, params
        gc.collect()
        torch.cuda.empty_cache()
    return rows


def bench_cpu(steps: int) -> list[dict]:
    """Tiny model on the bundled demo data: padded batches versus packed sequences of the same tokens."""
    import tempfile

    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl.data_utils import pack_dataset

    from finetune.recipe import load_recipe
    from finetune.stages import prepare_stage

    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(None, [f"output_dir={tmp}/run", f"model.base={tmp}/run/base-model"])
        prepare_stage(recipe)
        tokenizer_dir = recipe.model.base
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        rows = [json.loads(line) for line in (recipe.data_dir / "train.jsonl").read_text().splitlines()]
        ids = [tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False) for r in rows]
        model = AutoModelForCausalLM.from_pretrained(tokenizer_dir, dtype=torch.float32)
        model.train()
        batch_size, results = 4, []
        padded = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)][:steps]
        packed_ds = pack_dataset(Dataset.from_dict({"input_ids": ids}), seq_length=2048, strategy="bfd")
        packed = [packed_ds[i] for i in range(min(steps, len(packed_ds)))]
        for mode, batches in (("padded", padded), ("packed", packed)):
            real_tokens, started = 0, time.perf_counter()
            for batch in batches:
                if mode == "padded":
                    width = max(len(s) for s in batch)
                    input_ids = torch.tensor([s + [0] * (width - len(s)) for s in batch])
                    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
                    out = model(input_ids=input_ids, attention_mask=mask, labels=input_ids.masked_fill(mask == 0, -100))
                    real_tokens += int(mask.sum())
                else:
                    input_ids = torch.tensor([batch["input_ids"]])
                    # positions restart at every packed example, so no example attends to another
                    positions = [i for length in batch["seq_lengths"] for i in range(length)]
                    out = model(input_ids=input_ids, position_ids=torch.tensor([positions]), labels=input_ids)
                    real_tokens += input_ids.numel()
                out.loss.backward()
                model.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - started
            results.append({"mode": mode, "steps": len(batches), "tokens": real_tokens,
                            "tokens_per_s": real_tokens / elapsed})
            print(json.dumps(results[-1]), flush=True)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="4b,27b")
    parser.add_argument("--seq", default="1024,2048")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name()}", flush=True)
        rows = bench_gpu(args.models.split(","), [int(s) for s in args.seq.split(",")], args.steps)
        print("\nmodel  seq   mode      tokens/s   peak GiB  planned GiB  plan err")
        for r in rows:
            print(f"{r['model']:5} {r['seq_len']:5} {r['mode']:9} {r['tokens_per_s']:9.0f} {r['peak_gib']:9.2f} "
                  f"{r['planned_gib']:11.2f} {r['plan_error']:+8.1%}")
        for name in args.models.split(","):
            for seq in args.seq.split(","):
                pair = {r["mode"]: r for r in rows if r["model"] == name and r["seq_len"] == int(seq)}
                if len(pair) == 2:
                    ours, base = pair["medtune"], pair["baseline"]
                    speed = ours["tokens_per_s"] / base["tokens_per_s"]
                    print(f"{name} @ {seq}: medtune/baseline tokens/s x{speed:.2f}, "
                          f"peak memory x{ours['peak_gib'] / base['peak_gib']:.2f}")
    else:
        print("device: cpu (tiny model; packed vs padded)", flush=True)
        rows = bench_cpu(args.steps * 5)
        padded, packed = rows
        print(f"packed/padded tokens/s x{packed['tokens_per_s'] / padded['tokens_per_s']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
