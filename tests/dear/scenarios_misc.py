"""Rank-side code for the collective and misuse tests."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from wow_ray.dear import Communicator, DeAR, DeARConfig


def collectives(sizes: list[int], algorithm: str, subgroup: list[int] | None = None) -> bool:
    """Reduce-scatter and all-gather against all_reduce, for sizes that are multiples of n."""
    group = dist.new_group(subgroup) if subgroup else dist.group.WORLD
    if subgroup and dist.get_rank() not in subgroup:
        return True
    n, rank = dist.get_world_size(group), dist.get_rank(group)
    comm = Communicator(group, algorithm)
    ok = True
    for size in sizes:
        g = torch.Generator().manual_seed(rank * 7919 + size)
        data = torch.randn(size * n, generator=g, dtype=torch.float64)
        expected = data.clone()
        dist.all_reduce(expected, group=group)
        handle = comm.reduce_scatter(data)
        handle.wait()
        mine = data.view(n, -1)[rank]
        ok &= torch.allclose(mine, expected.view(n, -1)[rank], rtol=1e-12, atol=1e-12)
        data.view(n, -1)[[r for r in range(n) if r != rank]] = float("nan")
        comm.all_gather(data).wait()
        ok &= torch.allclose(data, expected, rtol=1e-12, atol=1e-12)
        try:
            comm.reduce_scatter(torch.zeros(n * size + 1))
            ok = False
        except ValueError:
            pass
    comm.close()
    return bool(ok)


def misuse_is_refused() -> dict:
    """Mistakes that would silently give a wrong step raise instead."""
    refused = {}
    model = nn.Linear(4, 4)
    dear = DeAR(model, lambda groups: torch.optim.SGD(groups, lr=0.1), DeARConfig())
    try:
        dear.to(torch.float64)
        refused["move_after_wrap"] = False
    except RuntimeError:
        refused["move_after_wrap"] = True
    loss = dear(torch.ones(2, 4)).sum()
    loss.backward(retain_graph=True)
    try:
        loss.backward()  # a second backward, no forward in between, reductions in flight
        refused["backward_twice"] = False
    except RuntimeError:
        refused["backward_twice"] = True
    dear.close()
    try:
        DeAR(nn.Linear(4, 4), lambda groups: torch.optim.SGD(nn.Linear(2, 2).parameters(), 0.1))
        refused["foreign_optimizer"] = False
    except ValueError:
        refused["foreign_optimizer"] = True
    try:
        DeARConfig(bucket_size_mb=0)
        refused["bad_config"] = False
    except ValueError:
        refused["bad_config"] = True
    refused.update(_layout_changes_and_float16_are_refused())
    return refused


def _raises(action, words: str, kind: type[Exception] = RuntimeError) -> bool:
    try:
        action()
        return False
    except kind as exc:
        return words in str(exc)


def _layout_changes_and_float16_are_refused() -> dict:
    model = nn.Linear(4, 4)
    dear = DeAR(model, lambda groups: torch.optim.SGD(groups, lr=0.1), DeARConfig())
    model.bias.requires_grad_(False)
    refused = {"requires_grad_changed": _raises(lambda: dear(torch.ones(2, 4)),
                                                "requires_grad of ['bias'] changed")}
    model.bias.requires_grad_(True)

    def fp16_forward() -> None:
        with torch.autocast("cpu", dtype=torch.float16):
            dear(torch.ones(2, 4))

    refused["fp16_autocast"] = _raises(fp16_forward, "bfloat16")
    dear(torch.ones(2, 4)).sum().backward()  # still usable after the refusals
    dear.step()
    dear.close()
    refused["fp16_parameters"] = _raises(
        lambda: DeAR(nn.Linear(4, 4).half(), lambda g: torch.optim.SGD(g, lr=0.1)),
        "float16", TypeError)
    return refused


def _frozen_base_model(seed: int) -> nn.Module:
    """Trainable layers around a frozen one (as LoRA's base), a buffer, tied weights."""
    torch.manual_seed(0)
    frozen = nn.Linear(6, 6)
    frozen.requires_grad_(False)
    torch.manual_seed(seed)
    embed = nn.Embedding(10, 6)
    head = nn.Linear(6, 10, bias=False)
    head.weight = embed.weight
    return nn.Sequential(embed, frozen, nn.BatchNorm1d(5), head)


def _train(dear: DeAR, steps: range) -> None:
    for step in steps:
        g = torch.Generator().manual_seed(100 * step + dist.get_rank())
        tokens = torch.randint(0, 10, (4, 5), generator=g)
        dear(tokens).logsumexp(-1).mean().backward()
        dear.step()
    dear.flush()


def folder_checkpoint(folder: str) -> dict:
    """save_checkpoint after 3 steps, load_checkpoint into a differently initialised model, 3
    more steps: the same parameters as 6 steps straight; model.pt leaves the frozen base out."""
    import os

    def make(seed: int) -> DeAR:
        return DeAR(_frozen_base_model(seed), lambda g: torch.optim.AdamW(g, lr=0.01),
                    DeARConfig(bucket_size_mb=0.0005))

    straight = make(0)
    _train(straight, range(3))
    straight.save_checkpoint(folder)
    _train(straight, range(3, 6))
    dist.barrier()  # every rank's files are written
    resumed = make(1)
    done = resumed.load_checkpoint(folder)
    _train(resumed, range(done, 6))
    expected, got = straight.module.state_dict(), resumed.module.state_dict()
    result = {"files": sorted(os.listdir(folder)), "done": done,
              "saved": sorted(torch.load(os.path.join(folder, "model.pt"))),
              "identical": all(torch.equal(expected[k], got[k]) for k in expected),
              "differ": [k for k in expected if not torch.equal(expected[k], got[k])]}
    straight.close()
    resumed.close()
    return result


def evaluation_on_one_rank_only() -> bool:
    """Forwards without grad (evaluation) communicate nothing, even the first one and with
    buffers to broadcast: one rank may evaluate while the other does not."""
    from torch.nn import functional as F  # noqa: N812

    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    dear = DeAR(model, lambda g: torch.optim.SGD(g, lr=0.1), DeARConfig(bucket_size_mb=0.0005))
    if dist.get_rank() == 1:
        with torch.no_grad():
            dear.module(torch.ones(3, 4))
    for _ in range(2):
        F.mse_loss(dear(torch.randn(3, 4)), torch.zeros(3, 4)).backward()
        dear.step()
        if dist.get_rank() == 0:
            dear.module.eval()
            with torch.no_grad():
                dear.module(torch.ones(3, 4))
            dear.module.train()
    dear.close()
    return True
