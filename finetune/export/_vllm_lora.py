"""The adapter alone, in the layout vLLM's LoRA loader accepts: PEFT's files, language-model weights only.

vLLM reads `adapter_config.json` and `adapter_model.safetensors`, parses every tensor name as
`base_model.model.<module>.lora_A|lora_B.weight`, applies LoRA to the language model only, and refuses
`modules_to_save` and DoRA. This module writes exactly that and refuses what vLLM would refuse, so a
clinic serving many adapters on one base (`vllm serve BASE --enable-lora --lora-modules name=DIR`) gets
an error here, at export, rather than at deployment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file

from finetune.errors import StageInputError

LORA_TENSOR = re.compile(r"^base_model\.model\.(?P<module>.+)\.(?P<kind>lora_A|lora_B)\.weight$")
NOT_LANGUAGE_MODEL = ("vision_tower", "vision_model", "multi_modal_projector")
VLLM_LORA_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})


def is_language_model_tensor(name: str) -> bool:
    return not any(marker in name for marker in NOT_LANGUAGE_MODEL)


def export_vllm_lora(adapter_dir: Path, out_dir: Path, base_model: str) -> dict[str, Any]:
    """Write `out_dir` from the PEFT adapter in `adapter_dir`; returns what was kept and what was left out."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("use_dora"):
        raise StageInputError(f"{adapter_dir}: a DoRA adapter cannot be loaded by vLLM; train without use_dora")
    if config.get("modules_to_save"):
        raise StageInputError(
            f"{adapter_dir}: modules_to_save ({', '.join(config['modules_to_save'])}) cannot be loaded by vLLM, "
            "which takes LoRA weights only; use the merged checkpoint instead"
        )
    kept, left_out = {}, []
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), "pt") as weights:
        for name in weights.keys():  # noqa: SIM118 (safe_open has no __iter__)
            if not is_language_model_tensor(name):
                left_out.append(name)
                continue
            match = LORA_TENSOR.match(name)
            if match is None or match["module"].rsplit(".", 1)[-1] not in VLLM_LORA_MODULES:
                raise StageInputError(
                    f"{adapter_dir}: tensor {name!r} is not a LoRA weight vLLM can place (expected "
                    f"base_model.model.<layer>.<{'|'.join(sorted(VLLM_LORA_MODULES))}>.lora_A|lora_B.weight)"
                )
            kept[name] = weights.get_tensor(name).contiguous()
    if not kept:
        raise StageInputError(f"{adapter_dir}: the adapter holds no language-model LoRA weights")
    targets = config.get("target_modules")
    if isinstance(targets, list):
        targets = sorted(t for t in targets if is_language_model_tensor(t))
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(out_dir / "adapter_model.safetensors"), metadata={"format": "pt"})
    vllm_config = {
        **config,
        "target_modules": targets,
        "modules_to_save": None,
        "base_model_name_or_path": base_model,
        "inference_mode": True,
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(vllm_config, indent=2) + "\n", encoding="utf-8")
    return {
        "tensors": len(kept),
        "rank": config["r"],
        "left_out_non_language_model_tensors": len(left_out),
        "modules": sorted({LORA_TENSOR.match(n)["module"].rsplit(".", 1)[-1] for n in kept}),  # type: ignore[index]
    }
