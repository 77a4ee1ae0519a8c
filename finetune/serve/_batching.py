"""A micro-batcher in front of `ChatModel.generate_batch`: concurrent requests share one decoding loop.

Decoding one token costs about the same for one row as for many on a GPU (and, for small models, on a CPU),
so requests that arrive together are answered together. Any requests can share a batch: each row keeps its
own limit, stop strings and sampling settings, and a sampled row draws from a random generator of its own,
so a seed reproduces a request's answer whatever it is batched with (or whatever other models decode beside).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from finetune.serve._decoding import GREEDY, GenerationRequest, Sampling
from finetune.serve._engine import ChatModel, Completion


@dataclass
class _Job:
    request: GenerationRequest
    sampling: Sampling
    future: Future[Completion]


class MicroBatcher:
    """Collects jobs for one model and runs them in batches of up to `max_batch_size` on a worker thread.

    The worker waits at most `max_wait_s` after the first job of a batch for companions, so a lone request
    pays that much latency and a crowd gets decoded together.
    """

    def __init__(
        self,
        model: ChatModel,
        max_batch_size: int = 8,
        max_wait_s: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self._queue: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, request: GenerationRequest, sampling: Sampling = GREEDY) -> Future[Completion]:
        future: Future[Completion] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError(f"the batcher for {self.model.name!r} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"batcher-{self.model.name}", daemon=True)
                self._thread.start()
            self._queue.append(_Job(request, sampling, future))
            self._ready.notify()
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _take_batch(self) -> list[_Job]:
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if not self._queue:
                return []
            deadline = time.monotonic() + self.max_wait_s
            while not self._closed:
                remaining = deadline - time.monotonic()
                if len(self._queue) >= self.max_batch_size or remaining <= 0:
                    break
                self._ready.wait(remaining)
            count = min(len(self._queue), self.max_batch_size)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while batch := self._take_batch():
            live = [job for job in batch if not job.request.cancelled.is_set()]
            for job in batch:
                if job.request.cancelled.is_set():
                    job.future.cancel()
            if not live:
                continue
            if self.on_batch is not None:
                self.on_batch(len(live))
            try:
                completions = self.model.generate_batch([job.request for job in live], [job.sampling for job in live])
            except Exception as exc:  # handed to every waiting caller, which answers its client
                for job in live:
                    job.future.set_exception(exc)
                continue
            for job, completion in zip(live, completions, strict=True):
                job.future.set_result(completion)
