"""Multi-GPU through accelerate: the configs in recipes/accelerate/, and `accelerate launch -m finetune train`
running unchanged on two CPU processes (DDP over gloo)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from accelerate.commands.config.config_args import ClusterConfig
from accelerate.utils import DistributedType

from finetune.models._loading import quantization_config
from finetune.recipe._schema import ModelConfig

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "recipes" / "accelerate"


def test_configs_for_ddp_fsdp_qlora_and_deepspeed_zero3() -> None:
    ddp = ClusterConfig.from_yaml_file(str(CONFIGS / "ddp.yaml"))
    assert ddp.distributed_type == DistributedType.MULTI_GPU and ddp.mixed_precision == "bf16"

    fsdp = ClusterConfig.from_yaml_file(str(CONFIGS / "fsdp-qlora.yaml"))
    assert fsdp.distributed_type == DistributedType.FSDP
    assert fsdp.fsdp_config["fsdp_use_orig_params"] is False, "QLoRA memory savings need use_orig_params=false"
    assert fsdp.fsdp_config["fsdp_cpu_ram_efficient_loading"] is True
    # FSDP can only shard the 4-bit weights because bitsandbytes stores them in bf16 containers.
    bnb = quantization_config(ModelConfig(base="google/medgemma-27b-text-it", compute_dtype="bfloat16"), torch.bfloat16)
    assert bnb.bnb_4bit_quant_storage == torch.bfloat16

    zero3 = ClusterConfig.from_yaml_file(str(CONFIGS / "deepspeed-zero3.yaml"))
    assert zero3.distributed_type == DistributedType.DEEPSPEED
    assert zero3.deepspeed_config["zero_stage"] == 3 and zero3.deepspeed_config["zero3_init_flag"] is True


def test_two_process_ddp_trains_and_writes_exactly_one_adapter(tmp_path: Path, tiny_model_dir: Path,
                                                               short_recipe) -> None:
    recipe = short_recipe(tmp_path / "run", tiny_model_dir)
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",  # this checkout, not another install
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "ddp.yaml"),
               "--num_processes", "2", "--mixed_precision", "no", "-m", "finetune", "train", str(recipe_path)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    assert result.stdout.count(f"adapter written to {recipe.adapter_dir}") == 2, "both ranks finished"
    adapters = [p for p in tmp_path.rglob("adapter_model.safetensors") if "checkpoints" not in p.parts]
    assert adapters == [recipe.adapter_dir / "adapter_model.safetensors"]
    metrics = json.loads((recipe.adapter_dir / "training_metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_steps"] == 2
    assert math.isfinite(metrics["eval_loss"]) and metrics["train_loss"] > 0
