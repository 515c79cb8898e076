"""A pool of real gloo ranks for tests: N spawned processes in one process group.

Starting N processes that import torch costs seconds on a 2-core machine, so the pool lives
for the whole test session and each test sends it a function (importable, module-level) to run
on every rank. A rank that raises, or a run that exceeds its timeout, breaks the pool: its
processes are killed (the others may be stuck in a collective) and the next test gets a new one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import tempfile
import traceback
from collections.abc import Callable
from datetime import timedelta


def _serve(rank: int, world: int, store: str, inbox: mp.Queue, outbox: mp.Queue) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=world, timeout=timedelta(seconds=120))
    while True:
        item = inbox.get()
        if item is None:
            break
        fn, args, kwargs = item
        try:
            outbox.put((rank, True, fn(*args, **kwargs)))
        except BaseException:
            outbox.put((rank, False, traceback.format_exc()))
    dist.destroy_process_group()


class GlooCluster:
    """`world` ranks joined in a gloo process group; `run(fn, ...)` returns each rank's result."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.broken = False
        context = mp.get_context("spawn")
        handle, self._store = tempfile.mkstemp(prefix="dear-store-")
        os.close(handle)
        os.unlink(self._store)  # the FileStore creates it
        self._inboxes = [context.Queue() for _ in range(world)]
        self._outbox = context.Queue()
        self._procs = [context.Process(target=_serve, daemon=True,
                                       args=(rank, world, self._store, self._inboxes[rank],
                                             self._outbox))
                       for rank in range(world)]
        for proc in self._procs:
            proc.start()

    def run(self, fn: Callable, *args: object, timeout: float = 240, **kwargs: object) -> list:
        if self.broken:
            raise RuntimeError("this cluster is broken")
        for inbox in self._inboxes:
            inbox.put((fn, args, kwargs))
        results: dict[int, object] = {}
        errors: dict[int, str] = {}
        while len(results) + len(errors) < self.world:
            try:
                # After a failure, give the other ranks a short grace: they may be stuck.
                rank, ok, value = self._outbox.get(timeout=10 if errors else timeout)
            except queue.Empty:
                break
            (results if ok else errors)[rank] = value
        if errors or len(results) < self.world:
            self.close(kill=True)
            detail = "\n".join(f"--- rank {r} ---\n{tb}" for r, tb in sorted(errors.items()))
            raise AssertionError(f"{fn.__name__} failed on {self.world} ranks "
                                 f"({len(results)} finished)\n{detail}")
        return [results[r] for r in range(self.world)]

    def close(self, kill: bool = False) -> None:
        self.broken = True
        if not kill:
            for inbox in self._inboxes:
                inbox.put(None)
            for proc in self._procs:
                proc.join(timeout=20)
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        if os.path.exists(self._store):
            os.unlink(self._store)
