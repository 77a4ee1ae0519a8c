"""Evaluation throughput against the tiny model served locally: requests one at a time vs concurrent (batched).

Builds the tiny Gemma 3 model in a temporary directory, serves it with medtune's OpenAI-compatible server on
loopback, and sends the bundled sample suites' prompts through the evaluation client, first one request at a
time, then `--concurrency` at once (the server decodes concurrent requests together). Prints examples/s for
both, their ratio, and whether the greedy answers are the same.

    python scripts/bench_eval.py [--concurrency 8] [--max-tokens 32] [--items 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight in the batched run")
    parser.add_argument("--max-tokens", type=int, default=32, help="new tokens per answer")
    parser.add_argument("--items", type=int, default=0, help="use only the first N prompts (0: all)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: what torch finds)")
    args = parser.parse_args()

    from finetune.eval import APIClient, GenerationCache, ServedModel, load_suite
    from finetune.models import build_tiny_model
    from finetune.recipe import SUITE_FORMATS, SuiteConfig, TinyModelConfig
    from finetune.serve import BackgroundServer, ChatModel, create_app

    items = [item for name in SUITE_FORMATS for item in load_suite(SuiteConfig(format=name), ["ru", "kk", "zh"])]
    items = items[: args.items] if args.items else items
    prompts = [item.prompt for item in items]
    limits = [args.max_tokens] * len(prompts)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny", TinyModelConfig(seed=0))
        model = ChatModel.load(model_dir, name="tiny", device=args.device)
        app = create_app({"tiny": model}, default_max_tokens=args.max_tokens, max_batch_size=args.concurrency)
        with BackgroundServer(app) as server:
            served = ServedModel("tuned", "tiny", "bench", lambda: APIClient(server.base_url))
            served.generate(prompts[:2], limits[:2], GenerationCache(None), 1)  # warm-up
            results = {}
            for label, concurrency in (("one at a time", 1), (f"{args.concurrency} in flight", args.concurrency)):
                start = time.perf_counter()
                answers = served.generate(prompts, limits, GenerationCache(None), concurrency)
                seconds = time.perf_counter() - start
                results[label] = (seconds, [a["text"] for a in answers])

    (single_s, single), (batched_s, batched) = results.values()
    device = str(model.device)
    print(f"tiny Gemma 3 on {device}, {len(prompts)} prompts from the bundled suites, {args.max_tokens} new tokens")
    print(f"{'mode':<16} {'seconds':>8} {'examples/s':>11}")
    for label, (seconds, _) in results.items():
        print(f"{label:<16} {seconds:>8.2f} {len(prompts) / seconds:>11.2f}")
    print(f"speed-up batched / one at a time: {single_s / batched_s:.2f}x")
    same = sum(a == b for a, b in zip(single, batched, strict=True))
    print(f"identical greedy answers: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
