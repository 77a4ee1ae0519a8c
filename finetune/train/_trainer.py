"""TRL's trainers with the guards a long run needs (`TrainingGuards`, mixed into the SFT trainer here and into the
GRPO and DPO ones): a non-finite loss stops it at once with its step and likely cause, every training log carries
tokens/s and peak memory, and the progress bar prints one short line per log.

Only numbers are logged: no example text reaches the console, wandb or TensorBoard.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers import ProgressCallback, Trainer
from trl import SFTTrainer

from finetune.train._collators import real_token_count
from finetune.train._loss import answer_nll_sum, resolve_loss_kernel


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; continuing would only waste compute."""


def peak_memory_gib() -> tuple[float, str]:
    """Peak memory so far and what it measures: allocated GPU memory, or the process's peak RSS on CPU."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30, "GPU"
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return peak_kib / 2**20, "RSS"


def non_finite_loss_message(value: float, step: int, learning_rate: float, max_grad_norm: float) -> str:
    kind = "infinite" if math.isinf(value) else "NaN"  # a finite value here means another rank's loss was NaN
    if step <= 1:
        cause = (
            "it was already non-finite before any update, so the base weights or the inputs are at fault: check the "
            "checkpoint (a corrupt download or a bad quantization) and model.compute_dtype"
        )
    else:
        cause = (
            f"training diverged: lower train.learning_rate (now {learning_rate:g}) or train.max_grad_norm (now "
            f"{max_grad_norm:g}), or raise train.warmup_ratio"
        )
    return f"the training loss became {kind} at step {step}; likely cause: {cause}. The adapter was not written."


def keep_adapters_in_float32(model: torch.nn.Module) -> int:
    """Put adapter weights that TRL stored in bf16 back in fp32, for runs that compute in fp32 (CPU).

    TRL keeps QLoRA adapters in bf16 (the QLoRA paper's GPU setting) whatever the compute dtype; in an fp32 run that
    only adds a cast of the activations in and out of every LoRA layer and rounds every update to bf16. Returns the
    number of tensors converted.
    """
    converted = 0
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype == torch.bfloat16:
            parameter.data = parameter.data.float()
            converted += 1
    return converted


class TrainingGuards:
    """What every medtune trainer adds to its TRL trainer (mixed in before it): a non-finite loss stops the run,
    logs carry tokens/s and peak memory, and resumed or best checkpoints keep the adapter's training dtypes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rate_mark: tuple[float, int] | None = None

    def _tokens_seen(self) -> int:
        """Tokens trained on so far, as the TRL trainer counts them."""
        return self._total_train_tokens

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
                      ) -> torch.Tensor:
        if self._rate_mark is None:
            self._rate_mark = (time.perf_counter(), self._tokens_seen())
        loss = super().training_step(model, inputs, num_items_in_batch)
        bad = (~torch.isfinite(loss.detach())).any().float()
        if self.accelerator.num_processes > 1:  # every rank stops together instead of one hanging in all-reduce
            bad = self.accelerator.reduce(bad, reduction="sum")
        if bool(bad > 0):
            raise NonFiniteLossError(non_finite_loss_message(
                float(loss.detach().float().sum()), self.state.global_step + 1, self.args.learning_rate,
                self.args.max_grad_norm,
            ))
        return loss

    @contextmanager
    def _not_counted_in_throughput(self) -> Iterator[None]:
        """Evaluation and checkpoint time is left out of the next tokens/s figure."""
        started = time.perf_counter()
        yield
        if self._rate_mark is not None:
            self._rate_mark = (self._rate_mark[0] + time.perf_counter() - started, self._rate_mark[1])

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        with self._not_counted_in_throughput():
            return super().evaluate(*args, **kwargs)

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        with self._not_counted_in_throughput():
            super()._save_checkpoint(model, trial)

    @contextmanager
    def _trainable_dtypes_kept(self, model: torch.nn.Module | None = None) -> Iterator[None]:
        """PEFT upcasts an adapter it loads to fp32, while TRL trains QLoRA adapters in bf16: put the dtypes back,
        so a resumed run continues at the precision it trained in and the best checkpoint is written as it was."""
        target = model if model is not None else self.model
        dtypes = {name: p.dtype for name, p in target.named_parameters() if p.requires_grad}
        yield
        for name, parameter in target.named_parameters():
            if name in dtypes and parameter.dtype != dtypes[name]:
                parameter.data = parameter.data.to(dtypes[name])

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: torch.nn.Module | None = None) -> None:
        with self._trainable_dtypes_kept(model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        with self._trainable_dtypes_kept():
            super()._load_best_model()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._rate_mark is not None:
            now, tokens = time.perf_counter(), self._tokens_seen()
            then, tokens_then = self._rate_mark
            logs["tokens_per_second"] = round((tokens - tokens_then) / max(now - then, 1e-9), 1)
            self._rate_mark = (now, tokens)
            logs["peak_memory_gib"] = round(peak_memory_gib()[0], 3)
        super().log(logs, start_time)


class GuardedSFTTrainer(TrainingGuards, SFTTrainer):
    """SFTTrainer that refuses to go on after a non-finite loss and reports throughput and memory.

    The loss goes through `loss_kernel` (`train.loss_kernel`, see `finetune.train._loss`): TRL's chunked log-prob
    head, or the answer tokens' cross-entropy computed the platform's cheapest way. Tokens are tallied on the device
    and read at each log, so counting them adds no per-step synchronisation.
    """

    def __init__(self, *args: Any, loss_kernel: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sharded = self.is_fsdp_enabled or self.is_deepspeed_enabled
        self.loss_kernel = resolve_loss_kernel(loss_kernel, self.args.device.type, sharded)
        self._untallied_tokens: torch.Tensor | None = None
        if not self.args.bf16:
            keep_adapters_in_float32(self.model)

    def _tokens_seen(self) -> int:
        if self._untallied_tokens is not None:
            local = self._untallied_tokens
            if self.accelerator.num_processes > 1:
                local = self.accelerator.reduce(local, reduction="sum")
            self._total_train_tokens += int(local) // self._tp_size
            self._untallied_tokens = None
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return self._total_train_tokens

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if self.loss_kernel == "trl" or return_outputs:
            return self._trl_loss(model, inputs, return_outputs, num_items_in_batch)
        nll, count = answer_nll_sum(model, inputs, self.loss_kernel)
        # As TRL's own loss: a mean over the trained tokens of the whole accumulated batch (every rank's)
        denominator = count if num_items_in_batch is None else num_items_in_batch
        loss = nll / torch.as_tensor(denominator, device=nll.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        if self.model.training:
            local = real_token_count(inputs, self._tokenizer.pad_token_id)
            tally = self._untallied_tokens
            self._untallied_tokens = local if tally is None else tally + local
        return loss

    def _trl_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool,
                  num_items_in_batch: Any) -> Any:
        before = self._total_train_tokens
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.model.training and "attention_mask" not in inputs and inputs["input_ids"].shape[0] > 1:
            # TRL counts a batch without attention mask as one padding-free row; packed rows batched as rows
            # (`PackedRowsCollator`) hold more, so the token count is redone from the padding
            local = real_token_count(inputs, self._tokenizer.pad_token_id).to(inputs["input_ids"].device)
            self._total_train_tokens = before + int(self.accelerator.gather_for_metrics(local).sum()) // self._tp_size
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return result


class ProgressLine(ProgressCallback):
    """The tqdm bar, plus one readable line per log instead of the raw metrics dict."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        parts = [f"step {state.global_step}/{state.max_steps}"]
        if "loss" in logs:
            parts.append(f"loss {logs['loss']:.4f}")
        if logs.get("reward") is not None:
            parts.append(f"reward {logs['reward']:.3f}")
        if "eval_loss" in logs:
            parts.append(f"eval loss {logs['eval_loss']:.4f}")
        if "tokens_per_second" in logs:
            parts.append(f"{logs['tokens_per_second']:,.0f} tokens/s")
        if "peak_memory_gib" in logs:
            parts.append(f"peak {peak_memory_gib()[1]} {logs['peak_memory_gib']:.2f} GiB")
        if len(parts) > 1:
            self.training_bar.write(" · ".join(parts), file=sys.stderr)


def use_progress_line(trainer: Trainer) -> None:
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(ProgressLine())
