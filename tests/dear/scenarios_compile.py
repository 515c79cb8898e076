"""DeAR under torch.compile, on every rank of a test pool: the compiled forward must still wait
for each bucket's all-gather before the module that reads it runs, and train as DDP does."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from wow_ray.dear import DeAR, DeARConfig


class Stack(nn.Module):
    """Eight 64 KB layers, used in the reverse of their registration order (so eager DeAR lays
    its buckets out again after the first forward): with 64 KB buckets, one all-gather each."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(128, 128) for _ in range(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            x = torch.tanh(layer(x))
        return x


def _batch(step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 * step + dist.get_rank())
    return torch.randn(16, 128, generator=g)


def _optimizer(params):  # noqa: ANN001, ANN202
    return torch.optim.AdamW(params, lr=1e-2)


def _train(model: nn.Module, sync, steps: int) -> None:  # noqa: ANN001
    for step in range(steps):
        sync(_batch(step)).square().mean().backward()
        sync.step()


def compiled_dear_vs_ddp(where: str, backend: str = "aot_eager", steps: int = 4) -> dict:
    """`where`: 'inner' compiles the model before DeAR wraps it (`model.compile()`), 'outer'
    compiles DeAR's wrapper (`dear.compile()`), 'none' compiles nothing. Returns the largest
    parameter difference from DDP (uncompiled), the buckets, and how many times a module's
    forward found its bucket's all-gather still to be waited for (not yet waited by anyone:
    after every step, each bucket's all-gather should be waited by the module that reads it,
    never by the flush at the forward's end)."""
    torch.manual_seed(0)
    reference = Stack()
    model = Stack()
    model.load_state_dict(reference.state_dict())
    ddp = DDP(reference)
    opt = _optimizer(ddp.parameters())
    for step in range(steps):
        ddp(_batch(step)).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    torch._dynamo.reset()
    if where == "inner":
        model.compile(backend=backend)
    dear = DeAR(model, _optimizer, DeARConfig(bucket_size_mb=128 * 129 * 4 / 2**20))
    if where == "outer":
        dear.compile(backend=backend)
    waits = {"pending_at_module": 0}
    wait = dear._wait_all_gather

    def counting_wait(index: int) -> None:
        waits["pending_at_module"] += index in dear._ag_inflight
        wait(index)

    dear._wait_all_gather = counting_wait  # the module pre-hooks call it through self
    for step in range(steps):
        dear(_batch(step)).square().mean().backward()
        dear.step()
    dear.close()
    diff = max((a - b).abs().max().item()
               for a, b in zip(reference.parameters(), model.parameters(), strict=True))
    return {"diff": diff, "buckets": len(dear._buckets), **waits}
