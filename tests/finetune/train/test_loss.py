"""The loss kernels: answer-token cross-entropy (CPU default) trains exactly what TRL's chunked head trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune.train._loss import LossKernelError, answer_positions, resolve_loss_kernel
from finetune.train._sft import build_trainer


def _loss_and_lora_grads(trainer, batch: dict[str, torch.Tensor], kernel: str) -> tuple[float, dict[str, torch.Tensor]]:
    trainer.loss_kernel = kernel
    model = trainer.model
    model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=None)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads


@pytest.mark.parametrize("packing", [True, False])
def test_torch_kernel_matches_trl_chunked_head_in_loss_and_gradients(packing: bool, tmp_path: Path,
                                                                     tiny_model_dir: Path, short_recipe) -> None:
    trainer = build_trainer(short_recipe(tmp_path, tiny_model_dir, packing=packing))
    assert trainer.loss_kernel == "torch"  # auto on CPU
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    with torch.no_grad():  # move LoRA off its zero init so every adapter weight gets a gradient
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    trl_loss, trl_grads = _loss_and_lora_grads(trainer, batch, "trl")
    torch_loss, torch_grads = _loss_and_lora_grads(trainer, batch, "torch")

    assert trl_loss > 1.0 and abs(torch_loss - trl_loss) < 1e-5
    assert trl_grads.keys() == torch_grads.keys() and any("lora_A" in name for name in trl_grads)
    for name, grad in trl_grads.items():
        torch.testing.assert_close(torch_grads[name], grad, msg=name)  # adapter grads are bf16: 1-2 ulp apart


def test_torch_kernel_counts_the_tokens_it_trains_on(tmp_path: Path, tiny_model_dir: Path, short_recipe) -> None:
    trainer = build_trainer(short_recipe(tmp_path, tiny_model_dir, model={"load_in_4bit": False}))
    batches = list(trainer.get_train_dataloader())[:2]
    real = sum(int((b["input_ids"] != trainer._tokenizer.pad_token_id).sum()) for b in batches)
    trainer.train()
    assert trainer.state.global_step == 2
    assert trainer._tokens_seen() == real  # the padding after short packed rows is not counted
    assert trainer.state.log_history[0]["num_tokens"] > 0


def test_answer_positions_pair_each_trained_token_with_the_position_that_predicts_it() -> None:
    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, 5, -100, -100, 9]])
    keep, targets = answer_positions(labels)
    assert keep.tolist() == [[False, True, True, False, False], [True, False, False, True, False]]
    assert targets.tolist() == [7, 8, 5, 9]


def test_the_loss_kernel_follows_the_platform_and_refuses_what_cannot_run() -> None:
    assert resolve_loss_kernel("auto", "cpu", liger=True) == "torch"
    assert resolve_loss_kernel("auto", "cuda", liger=True) == "liger"
    assert resolve_loss_kernel("auto", "cuda", liger=False) == "trl"
    assert resolve_loss_kernel("auto", "cuda", sharded=True, liger=True) == "trl"
    assert resolve_loss_kernel("trl", "cpu") == "trl"
    with pytest.raises(LossKernelError, match="needs a CUDA GPU"):
        resolve_loss_kernel("liger", "cpu", liger=True)
    with pytest.raises(LossKernelError, match=r'pip install "medtune\[gpu\]"'):
        resolve_loss_kernel("liger", "cuda", liger=False)
    with pytest.raises(LossKernelError, match="FSDP and DeepSpeed"):
        resolve_loss_kernel("liger", "cuda", sharded=True, liger=True)
