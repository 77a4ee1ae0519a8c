"""Load test of the OpenAI-compatible server: N concurrent clients on loopback, batched vs one-at-a-time.

Starts the server twice in this process on 127.0.0.1 (micro-batching on, then max_batch_size=1), runs the
same closed-loop load against each for a bounded time, and prints requests/s, tokens/s and latency side by
side. Exits 1 if any request failed or batching gives less than --min-speedup × the tokens/s.

    python scripts/bench_serve.py                     # tiny Gemma 3 built in a temp dir, 32 clients, 15 s each
    python scripts/bench_serve.py --model runs/tiny-demo/merged --seconds 30
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, not an installed copy

from data_prep.samples import bundled_texts
from finetune.serve import BackgroundServer, ChatModel, create_app


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def prompts(count: int) -> list[list[dict[str, str]]]:
    """Short synthetic clinic questions from the bundled sample text (no real patient data)."""
    texts = [t.strip()[:160] for t in itertools.islice(bundled_texts(), 500) if len(t.strip()) > 20]
    return [[{"role": "user", "content": texts[i % len(texts)]}] for i in range(count)]


def run_clients(base_url: str, clients: int, seconds: float, max_tokens: int) -> tuple[Load, float]:
    load = Load()
    questions = prompts(clients * 4)
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        with httpx.Client(base_url=base_url, timeout=120) as http:
            for n in itertools.count():
                if time.monotonic() >= deadline:
                    return
                body = {"model": "bench", "messages": questions[(index * 4 + n) % len(questions)],
                        "max_tokens": max_tokens, "temperature": 0}
                started = time.perf_counter()
                try:
                    response = http.post("/v1/chat/completions", json=body)
                    response.raise_for_status()
                    tokens = response.json()["usage"]["completion_tokens"]
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    with load.lock:
                        load.errors.append(type(exc).__name__)
                    continue
                with load.lock:
                    load.latencies.append(time.perf_counter() - started)
                    load.completion_tokens += tokens

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load, time.perf_counter() - started


def mean_batch_size(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    values = {line.split(" ")[0].split("{")[0]: float(line.split(" ")[-1])
              for line in text.splitlines() if line.startswith("medtune_generation_batch_size_")}
    count = values.get("medtune_generation_batch_size_count", 0)
    return values.get("medtune_generation_batch_size_sum", 0) / count if count else 0.0


def measure(model: ChatModel, max_batch_size: int, args: argparse.Namespace) -> dict[str, float]:
    app = create_app({"bench": model}, max_batch_size=max_batch_size, batch_wait_ms=args.batch_wait_ms,
                     max_tokens_limit=args.max_tokens)
    with BackgroundServer(app) as server:
        run_clients(server.base_url, args.clients, min(2.0, args.seconds), args.max_tokens)  # warm-up
        load, elapsed = run_clients(server.base_url, args.clients, args.seconds, args.max_tokens)
        batch = mean_batch_size(server.base_url)
    ordered = sorted(load.latencies) or [float("nan")]
    return {
        "requests": len(load.latencies),
        "errors": len(load.errors),
        "requests/s": len(load.latencies) / elapsed,
        "tokens/s": load.completion_tokens / elapsed,
        "p50 latency s": statistics.median(ordered),
        "p95 latency s": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "mean batch": batch,
        "elapsed s": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a Gemma 3 checkpoint (default: a tiny one built here)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0, help="load duration per mode (bounded)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--min-speedup", type=float, default=3.0)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="intra-op threads for generation; 1 avoids oversubscribing a small shared CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            from finetune.models import build_tiny_model
            from finetune.recipe import TinyModelConfig

            path = build_tiny_model(Path(tmp) / "tiny", TinyModelConfig(seed=0))
        model = ChatModel.load(path, name="bench")
        results = {
            "batched": measure(model, args.clients, args),
            "one-at-a-time": measure(model, 1, args),
        }
    print(f"\n{args.clients} concurrent clients on 127.0.0.1, {args.seconds:g} s per mode, max_tokens "
          f"{args.max_tokens}, greedy, torch threads {args.torch_threads}, model "
          f"{'tiny Gemma 3 (built here)' if args.model is None else args.model}\n")
    names = list(results)
    print(f"{'':16}" + "".join(f"{n:>16}" for n in names) + f"{'ratio':>10}")
    for key in results["batched"]:
        a, b = results["batched"][key], results["one-at-a-time"][key]
        ratio = f"{a / b:>9.2f}×" if b and key not in ("errors", "elapsed s") else ""
        print(f"{key:16}" + "".join(f"{results[n][key]:>16.3f}" for n in names) + f"{ratio:>10}")
    speedup = results["batched"]["tokens/s"] / max(results["one-at-a-time"]["tokens/s"], 1e-9)
    errors = results["batched"]["errors"] + results["one-at-a-time"]["errors"]
    verdict = errors == 0 and speedup >= args.min_speedup
    print(f"\nbatched / one-at-a-time tokens/s: {speedup:.2f}× (need ≥ {args.min_speedup:g}×); errors: {errors:g}"
          f" → {'OK' if verdict else 'FAILED'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
