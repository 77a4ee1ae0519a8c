"""QLoRA training speed and memory, measured side by side.

CPU (`--cpu`, or any machine without a GPU): the demo's job (tiny Gemma 3 base, the demo's prepared training split,
nf4 double-quantized QLoRA, LoRA r 16 / alpha 32 on all linear layers, 2 epochs, batch 2, packed 2048-token rows,
lr 1e-2 cosine, warmup 5%, grad-norm 0.3, validation and a checkpoint each epoch) run three ways, each in a fresh
child process so its peak RSS is its own, in alternating order: `medtune train`, and the same job through plain TRL
`SFTTrainer` + PEFT with no medtune code (TRL's defaults: padding-free packing, its chunked log-prob head), the floor
medtune adds to. `--llamafactory CLI` also runs LLaMA-Factory's `llamafactory-cli train` on the same data and
settings (it has no validation here), for the peer comparison. Prints wall time of the whole job, train-loop
tokens/s, peak RSS, final loss, and the ratios.

    python scripts/bench_train.py --cpu [--repeats 2] [--llamafactory /path/to/llamafactory-cli] [--json OUT]

GPU: models of the exact MedGemma-4B and 27B-text shapes with random 4-bit weights (no download), QLoRA steps at each
sequence length and batch size, tokens/s and peak `torch.cuda.max_memory_allocated` next to the planner's estimate:

- `baseline`: like Google's notebook: eager attention, full logits, prompt tokens in the loss;
- `before`: medtune until 2026-12: eager attention, TRL's chunked log-prob head, answer tokens only;
- `medtune`: today's defaults: sdpa attention, the loss kernel `auto` picks (Liger's fused linear cross-entropy
  when `medtune[gpu]` is installed, else TRL's head), answer tokens only.

    python scripts/bench_train.py [--models 4b,27b] [--seq 2048] [--batch 1,4] [--steps 4] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

GIB = 1024**3
JOB = {"epochs": 2, "batch": 2, "max_length": 2048, "lr": 1e-2, "warmup": 0.05, "grad_norm": 0.3, "r": 16,
       "alpha": 32, "seed": 42}


# ---------------------------------------------------------------------------------------------------------------- CPU

def _demo_recipe(work: Path):  # type: ignore[no-untyped-def]
    from finetune.recipe import load_recipe

    return load_recipe(None, [f"output_dir={work}/medtune", f"model.base={work}/base-model"])


def prepare_demo(work: Path) -> dict[str, str]:
    """The demo's base model and prepared splits, once, shared by every job."""
    from finetune.stages import prepare_stage

    recipe = _demo_recipe(work)
    if not (recipe.data_dir / "train.jsonl").is_file():
        prepare_stage(recipe)
    return {"base": str(recipe.model.base), "data": str(recipe.data_dir)}


def job_medtune(work: Path) -> dict:
    from finetune.train import train

    recipe = _demo_recipe(work)
    adapter = train(recipe)
    metrics = json.loads((adapter / "training_metrics.json").read_text())
    return {"train_seconds": metrics["runtime_seconds"], "steps": metrics["global_steps"],
            "train_loss": metrics["train_loss"], "eval_loss": metrics["eval_loss"]}


def job_trl(work: Path) -> dict:
    """The same job with TRL, PEFT, transformers and bitsandbytes only: nothing of medtune is imported."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    base, data = work / "base-model", work / "medtune" / "data"
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.float32, bnb_4bit_quant_storage=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, quantization_config=quantization,
                                                 device_map={"": "cpu"})
    splits = load_dataset("json", data_files={"train": str(data / "train.jsonl"),
                                              "validation": str(data / "validation.jsonl")})
    splits = splits.remove_columns([c for c in splits["train"].column_names if c != "messages"])
    config = SFTConfig(
        output_dir=str(work / "trl"), num_train_epochs=JOB["epochs"], per_device_train_batch_size=JOB["batch"],
        per_device_eval_batch_size=JOB["batch"], gradient_accumulation_steps=1, max_length=JOB["max_length"],
        learning_rate=JOB["lr"], lr_scheduler_type="cosine", warmup_steps=JOB["warmup"],
        max_grad_norm=JOB["grad_norm"], assistant_only_loss=True, packing=True, eval_strategy="epoch",
        save_strategy="epoch", save_total_limit=2, load_best_model_at_end=True, metric_for_best_model="eval_loss",
        use_cpu=True, report_to="none", seed=JOB["seed"], data_seed=JOB["seed"], logging_steps=20,
        disable_tqdm=True,
    )
    lora = LoraConfig(r=JOB["r"], lora_alpha=JOB["alpha"], lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=config, train_dataset=splits["train"], eval_dataset=splits["validation"],
                         processing_class=AutoTokenizer.from_pretrained(base), peft_config=lora)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(str(work / "trl" / "adapter"))
    return {"train_seconds": round(seconds, 2), "steps": trainer.state.global_step,
            "train_loss": result.training_loss, "eval_loss": trainer.state.best_metric}


def llamafactory_config(work: Path) -> Path:
    """LLaMA-Factory's settings for the same job (neat packing: no attention across packed examples; no eval)."""
    data = work / "medtune" / "data"
    folder = work / "llamafactory"
    folder.mkdir(exist_ok=True)
    (folder / "dataset_info.json").write_text(json.dumps({"demo": {
        "file_name": str(data / "train.jsonl"), "formatting": "sharegpt", "columns": {"messages": "messages"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                 "system_tag": "system"}}}))
    settings = {
        "model_name_or_path": str(work / "base-model"), "stage": "sft", "do_train": True, "finetuning_type": "lora",
        "lora_rank": JOB["r"], "lora_alpha": JOB["alpha"], "lora_dropout": 0.0, "lora_target": "all",
        "quantization_bit": 4, "quantization_method": "bnb", "quantization_type": "nf4", "double_quantization": True,
        "dataset_dir": str(folder), "dataset": "demo", "template": "gemma", "cutoff_len": JOB["max_length"],
        "packing": True, "neat_packing": True, "overwrite_cache": True, "preprocessing_num_workers": 1,
        "output_dir": str(folder / "out"), "overwrite_output_dir": True, "logging_steps": 20,
        "save_strategy": "epoch", "report_to": "none", "per_device_train_batch_size": JOB["batch"],
        "gradient_accumulation_steps": 1, "learning_rate": JOB["lr"], "num_train_epochs": JOB["epochs"],
        "lr_scheduler_type": "cosine", "warmup_ratio": JOB["warmup"], "max_grad_norm": JOB["grad_norm"],
        "seed": JOB["seed"], "bf16": False, "fp16": False,
    }
    path = folder / "train.json"
    path.write_text(json.dumps(settings, indent=1))
    return path


def _run_child(command: list[str], env: dict[str, str]) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (MiB) and CPU times of one child process, from its own rusage."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-3000:]}")
    cpu = {"user_s": round(usage.ru_utime, 1), "sys_s": round(usage.ru_stime, 1), "minor_faults": usage.ru_minflt}
    return wall, usage.ru_maxrss / 1024, {**cpu, "output": output}


def _llamafactory_result(output: str, work: Path) -> dict:
    state = json.loads((work / "llamafactory" / "out" / "trainer_state.json").read_text())
    losses = [entry["train_loss"] for entry in state["log_history"] if "train_loss" in entry]
    runtime = [entry["train_runtime"] for entry in state["log_history"] if "train_runtime" in entry]
    return {"train_seconds": runtime[-1] if runtime else None, "steps": state["global_step"],
            "train_loss": losses[-1] if losses else None, "eval_loss": None}


def bench_cpu(repeats: int, llamafactory: str | None, keep: Path | None) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        prepare_demo(work)
        lengths = [len(line) for line in (work / "medtune" / "data" / "train.jsonl").read_text().splitlines()]
        tokens = _demo_tokens(work) * JOB["epochs"]
        print(f"demo job: {len(lengths)} training examples, {tokens:,} tokens over {JOB['epochs']} epochs",
              flush=True)
        jobs = ["medtune", "trl"] + (["llamafactory"] if llamafactory else [])
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "WANDB_MODE": "disabled"}
        rows = []
        for repeat in range(repeats):
            for name in jobs if repeat % 2 == 0 else jobs[::-1]:
                out = work / f"{name}.json"
                if name == "llamafactory":
                    command = [llamafactory, "train", str(llamafactory_config(work))]
                else:
                    command = [sys.executable, __file__, "--job", name, "--work", str(work), "--out", str(out)]
                wall, rss, usage = _run_child(command, env)
                result = _llamafactory_result(usage.pop("output"), work) if name == "llamafactory" else \
                    json.loads(out.read_text())
                usage.pop("output", None)
                train_s = result["train_seconds"]
                row = {"job": name, "repeat": repeat, "wall_s": round(wall, 1), "peak_rss_mib": round(rss),
                       "tokens_per_s": round(tokens / train_s) if train_s else None, **result, **usage}
                rows.append(row)
                print(json.dumps(row), flush=True)
        _print_cpu_table(rows, jobs)
        return rows


def _demo_tokens(work: Path) -> int:
    """Tokens of the demo's training examples as the chat template renders them (what every job trains on)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(work / "base-model")
    rows = [json.loads(line) for line in (work / "medtune" / "data" / "train.jsonl").read_text().splitlines()]
    return sum(len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=False)) for r in rows)


def _print_cpu_table(rows: list[dict], jobs: list[str]) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows if r["job"] == name)

    print("\njob           wall s   train-loop tokens/s   peak RSS MiB   user s   sys s   final train loss")
    for name in jobs:
        losses = [r["train_loss"] for r in rows if r["job"] == name]
        print(f"{name:12} {median(name, 'wall_s'):7.1f} {median(name, 'tokens_per_s'):15,.0f} "
              f"{median(name, 'peak_rss_mib'):14,.0f} {median(name, 'user_s'):8.1f} {median(name, 'sys_s'):7.1f}   "
              f"{losses[-1]:.3f}")
    for other in jobs[1:]:
        print(f"medtune / {other}: wall x{median('medtune', 'wall_s') / median(other, 'wall_s'):.2f}, "
              f"train-loop time x{median(other, 'tokens_per_s') / median('medtune', 'tokens_per_s'):.2f}, "
              f"peak RSS x{median('medtune', 'peak_rss_mib') / median(other, 'peak_rss_mib'):.2f}")


# ---------------------------------------------------------------------------------------------------------------- GPU

VARIANTS = {  # attention, loss kernel, answers only
    "baseline": ("eager", "full", False),
    "before": ("eager", "trl", True),
    "medtune": ("sdpa", "auto", True),
}


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


def _step(model, input_ids: torch.Tensor, labels: torch.Tensor, kernel: str) -> torch.Tensor:  # type: ignore[no-untyped-def]
    from finetune.train._loss import answer_nll_sum

    extra = {"token_type_ids": torch.zeros_like(input_ids)} if hasattr(model.config, "vision_config") else {}
    if kernel == "trl":
        out = model(input_ids=input_ids, labels=labels, fused_lm_head=True, **extra)
        loss = -(out.log_probs.sum() / (labels[:, 1:] != -100).sum())
    elif kernel == "full":
        loss = model(input_ids=input_ids, labels=labels, **extra).loss
    else:
        nll, count = answer_nll_sum(model, {"input_ids": input_ids, "labels": labels, **extra}, kernel)
        loss = nll / count
    loss.backward()
    return loss.detach()


def bench_gpu(models: list[str], seqs: list[int], batches: list[int], steps: int) -> list[dict]:
    import bitsandbytes as bnb

    from finetune.models import medgemma_4b, medgemma_27b_text
    from finetune.train import Shape, TrainShape, estimate
    from finetune.train._loss import resolve_loss_kernel

    builders = {"4b": medgemma_4b, "27b": medgemma_27b_text}
    rows = []
    for name in models:
        config = builders[name]()
        shape = Shape.from_config(config)
        model = _peft_model(config)
        optimizer = bnb.optim.PagedAdamW8bit([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        model.train()
        for seq in seqs:
            for variant, (attention, kernel, answers_only) in VARIANTS.items():
                kernel = resolve_loss_kernel(kernel, "cuda") if kernel == "auto" else kernel
                model.get_base_model().set_attn_implementation(attention)
                for batch in batches if variant == "medtune" else [1]:
                    rows.append(_gpu_point(model, optimizer, shape, name, seq, batch, variant, attention, kernel,
                                           answers_only, steps, estimate, TrainShape))
                    print(json.dumps(rows[-1]), flush=True)
        del model, optimizer
        gc.collect()
        torch.cuda.empty_cache()
    return rows


def _gpu_point(model, optimizer, shape, name, seq, batch, variant, attention, kernel, answers_only, steps,  # type: ignore[no-untyped-def]
               estimate, train_shape) -> dict:
    generator = torch.Generator(device="cuda").manual_seed(0)
    input_ids = torch.randint(10, 200_000, (batch, seq), device="cuda", generator=generator)
    labels = input_ids.clone()
    if answers_only:
        labels[:, : seq // 2] = -100  # answers only: the prompt half is not trained on
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    error = None
    try:
        for _ in range(2):  # warm-up: optimizer state appears on the first step
            _step(model, input_ids, labels, kernel)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            loss = _step(model, input_ids, labels, kernel)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        elapsed, peak = time.perf_counter() - started, torch.cuda.max_memory_allocated() / GIB
    except torch.cuda.OutOfMemoryError as exc:
        elapsed, peak, loss, error = float("nan"), float("nan"), torch.tensor(float("nan")), str(exc)[:80]
        optimizer.zero_grad(set_to_none=True)
    plan = estimate(shape, train_shape(seq_len=seq, batch_size=batch, chunked_loss=kernel != "full",
                                       loss_fraction=0.5 if answers_only else 1.0, attention=attention,
                                       loss_kernel=kernel))
    return {"model": name, "seq_len": seq, "batch": batch, "mode": variant, "attention": attention,
            "loss_kernel": kernel, "tokens_per_s": batch * seq * steps / elapsed, "peak_gib": peak,
            "peak_gib_per_row": peak / batch, "planned_gib": plan.total_gib, "plan_error": plan.total_gib / peak - 1,
            "loss": float(loss), "error": error}


def _print_gpu_table(rows: list[dict]) -> None:
    print("\nmodel  seq  batch mode      attention loss    tokens/s  peak GiB  GiB/row  planned GiB  plan err")
    for r in rows:
        print(f"{r['model']:5} {r['seq_len']:5} {r['batch']:4} {r['mode']:9} {r['attention']:9} {r['loss_kernel']:6}"
              f"{r['tokens_per_s']:9.0f} {r['peak_gib']:9.2f} {r['peak_gib_per_row']:8.2f} {r['planned_gib']:11.2f} "
              f"{r['plan_error']:+8.1%}")


# --------------------------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="the demo job: medtune vs plain TRL (and LLaMA-Factory)")
    parser.add_argument("--repeats", type=int, default=2, help="CPU: runs of each job, alternating order")
    parser.add_argument("--llamafactory", default=None, help="CPU: path to llamafactory-cli, to run the peer too")
    parser.add_argument("--work", type=Path, default=None, help="CPU: keep the jobs' files here")
    parser.add_argument("--models", default="4b,27b")
    parser.add_argument("--seq", default="2048")
    parser.add_argument("--batch", default="1,4", help="GPU: batch sizes for the medtune variant")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--job", choices=["medtune", "trl"], help=argparse.SUPPRESS)  # one CPU job, in a child
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        result = job_medtune(args.work) if args.job == "medtune" else job_trl(args.work)
        args.out.write_text(json.dumps(result))
        return
    if args.cpu or not torch.cuda.is_available():
        print("device: cpu, threads:", torch.get_num_threads(), flush=True)
        rows = bench_cpu(args.repeats, args.llamafactory, args.work)
    else:
        print(f"device: {torch.cuda.get_device_name()}", flush=True)
        rows = bench_gpu(args.models.split(","), [int(s) for s in args.seq.split(",")],
                         [int(b) for b in args.batch.split(",")], args.steps)
        _print_gpu_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
