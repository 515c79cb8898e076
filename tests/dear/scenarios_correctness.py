"""Rank-side code for the correctness tests: parameters read without their module's forward,
construction (broadcast, argument checks), and gradients read between backward and step()."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from wow_ray.dear import DeAR, DeARConfig

from .scenarios import VOCAB, WIDTH, _loss, max_difference, train_ddp, train_dear


class AttentionNet(nn.Module):
    """nn.MultiheadAttention reads `out_proj.weight` and `.bias` itself and never calls
    `out_proj`; nn.TransformerEncoder's layers do the same inside their attention."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.attn = nn.MultiheadAttention(WIDTH, 4, batch_first=True)
        layer = nn.TransformerEncoderLayer(WIDTH, 4, dim_feedforward=2 * WIDTH, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(self.encoder(h))


def attention_vs_ddp(kind: str, config: dict, steps: int = 10) -> dict:
    """DDP and DeAR (small buckets, so out_proj has buckets of its own) on AttentionNet."""
    reference = train_ddp(kind, steps, 1, None, {}, net=AttentionNet)
    ours, dear = train_dear(kind, steps, 1, None, {}, {"bucket_size_mb": 0.002, **config},
                            net=AttentionNet)
    torch.manual_seed(0)
    initial = AttentionNet().state_dict()
    result = {"diff": max_difference(reference, ours), "moved": max_difference(initial, ours),
              "buckets": len(dear._buckets)}
    dear.close()
    return result


class PartlyFrozen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.trained = nn.Linear(4, 4)
        self.norm = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.trained(self.frozen(x)))


def broadcast_covers_frozen_parameters() -> dict:
    """Every rank builds a different model; after wrapping, all hold rank 0's (frozen ones too)."""
    torch.manual_seed(dist.get_rank())
    model = PartlyFrozen()
    model.norm.running_mean.fill_(float(dist.get_rank()))
    dear = DeAR(model, lambda groups: torch.optim.SGD(groups, lr=0.1))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, state)
    dear.close()
    return {name: all(torch.equal(other[name], state[name]) for other in everyone)
            for name in state}


def _refused(build) -> str:
    """The error a construction raised ("" if none), after checking the model was untouched."""
    model = nn.Linear(4, 4)
    before = [p.data_ptr() for p in model.parameters()]
    try:
        build(model)
        message = ""
    except (TypeError, ValueError) as exc:
        message = str(exc)
    untouched = before == [p.data_ptr() for p in model.parameters()] and all(
        p.grad is None for p in model.parameters())
    return message if untouched else "the model was changed: " + message


def bad_arguments_are_refused_before_anything_moves() -> dict:
    instance = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    return {
        "instance": _refused(lambda m: DeAR(m, instance)),
        "returns_none": _refused(lambda m: DeAR(m, lambda groups: None)),
        "foreign": _refused(lambda m: DeAR(
            m, lambda groups: torch.optim.SGD(nn.Linear(2, 2).parameters(), 0.1))),
        "raises": _refused(lambda m: DeAR(m, lambda groups: torch.optim.SGD(groups, lr=-1))),
        "config": _refused(lambda m: DeAR(m, lambda g: torch.optim.SGD(g, 0.1), {"x": 1})),
    }


def gradient_reads_between_backward_and_step() -> dict:
    """torch's own clip_grad_norm_ and a read of p.grad after a synchronised backward are
    refused; under no_sync() (nothing reduced yet) p.grad is the local gradient, as with DDP;
    after step() training goes on normally."""
    torch.manual_seed(0)
    model = AttentionNet()
    dear = DeAR(model, lambda groups: torch.optim.SGD(groups, lr=0.1),
                DeARConfig(bucket_size_mb=0.002))
    outcome = {}
    with dear.no_sync():
        _loss(dear, 0, 0).backward()
    local = model.head.weight.grad
    outcome["no_sync_readable"] = bool(local.abs().sum() > 0)
    _loss(dear, 0, 1).backward()
    for name, read in {
        "clip_grad_norm_": lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0),
        "grad_norm": lambda: model.head.weight.grad.norm(),
        "grad_clone": lambda: model.attn.out_proj.bias.grad.clone(),
    }.items():
        try:
            read()
            outcome[name] = "not refused"
        except RuntimeError as exc:
            outcome[name] = str(exc)
    dear.clip_grad_norm_(1.0)
    dear.step()
    for step in range(1, 3):
        _loss(dear, step, 0).backward()
        dear.step()
    dear.flush()
    outcome["trains_on"] = all(torch.isfinite(p).all().item() for p in model.parameters())
    dear.close()
    outcome["grad_after_close"] = all(p.grad is None for p in model.parameters())
    return outcome


class NormNet(nn.Module):
    """BatchNorm between embedding and head: running statistics are per-rank state."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.norm = nn.BatchNorm1d(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.embed(tokens).transpose(1, 2)).transpose(1, 2)
        return self.head(h)


def batchnorm_vs_ddp(kind: str, config: dict, steps: int = 8) -> dict:
    """Buffers follow DDP's broadcast_buffers, through no_sync() accumulation too."""
    reference = train_ddp(kind, steps, 2, None, {}, net=NormNet)
    ours, dear = train_dear(kind, steps, 2, None, {}, {"bucket_size_mb": 0.002, **config},
                            net=NormNet)
    dear.close()
    buffers = ("norm.running_mean", "norm.running_var", "norm.num_batches_tracked")
    return {"diff": max_difference(reference, ours),
            "buffer_diff": max((reference[b].float() - ours[b].float()).abs().max().item()
                               for b in buffers)}


def overlap_timeline(steps: int = 4) -> dict:
    """Record when reduce-scatters start (against the end of backward) and which all-gathers
    are still running when the next forward starts and where the forward waits for them."""
    import time

    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(512, 512) for _ in range(12)])  # 1 MB per layer
    dear = DeAR(model, lambda groups: torch.optim.SGD(groups, lr=1e-3),
                DeARConfig(bucket_size_mb=1.0))
    events: list[tuple[str, float]] = []
    launch_rs, wait_ag, end_backward = dear._comm.reduce_scatter, dear._wait_all_gather, \
        dear._end_backward
    running_ags: list = []
    launch_ag = dear._comm.all_gather

    def record(name: str, fn):  # noqa: ANN001, ANN202
        def wrapped(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            events.append((name, time.perf_counter()))
            return fn(*args, **kwargs)
        return wrapped

    def all_gather(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        handle = launch_ag(*args, **kwargs)
        running_ags.append(handle)
        return handle

    dear._comm.reduce_scatter = record("rs", launch_rs)
    dear._comm.all_gather = all_gather
    dear._wait_all_gather = record("ag_wait", wait_ag)
    dear._end_backward = record("backward_end", end_backward)
    model.register_forward_pre_hook(
        lambda *_: events.append((f"forward_start {sum(not h.is_completed() for h in running_ags)}",
                                  time.perf_counter())), prepend=True)
    model.register_forward_hook(lambda *_: events.append(("forward_end", time.perf_counter())))
    x = torch.randn(64, 512, generator=torch.Generator().manual_seed(dist.get_rank()))
    for _ in range(steps):
        dear(x).square().mean().backward()
        running_ags.clear()
        dear.step()  # starts this step's all-gathers
    dear.close()
    return {"buckets": len(dear._buckets), "events": [name for name, _ in events]}


class Reversed(nn.Module):
    """Layers used in the reverse of the order they are registered in."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(256, 256, bias=False) for _ in range(12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            x = torch.tanh(layer(x))
        return x


class MixedDtypes(nn.Module):
    """float32 and float64 layers in turn: two flat spaces whose buckets must interleave."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(256, 256, bias=False, dtype=torch.float64 if i % 2 else torch.float32)
            for i in range(12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x.to(layer.weight.dtype)))
        return x.float()


def reduce_scatters_by_mid_backward(net: str, steps: int = 3) -> dict:
    """How many buckets were launched once half the layers' gradients had arrived (the
    second iteration on), and whether the run still matches a plain all-reduce."""
    torch.manual_seed(0)
    model = {"reversed": Reversed, "mixed": MixedDtypes}[net]()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    events: list[str] = []
    for p in model.parameters():  # before DeAR's hooks, so a launch is seen after its gradient
        p.register_post_accumulate_grad_hook(lambda p: events.append("grad"))
    dear = DeAR(model, lambda groups: torch.optim.SGD(groups, lr=0.1),
                DeARConfig(bucket_size_mb=0.25))
    launch = dear._comm.reduce_scatter

    def reduce_scatter(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        events.append("rs")
        return launch(*args, **kwargs)

    dear._comm.reduce_scatter = reduce_scatter
    x = torch.randn(32, 256, generator=torch.Generator().manual_seed(dist.get_rank()))
    counts = []
    for _ in range(steps):
        events.clear()
        dear(x).square().mean().backward()
        dear.step()
        grads = [i for i, e in enumerate(events) if e == "grad"]
        counts.append(events[:grads[len(grads) // 2]].count("rs"))
    dear.flush()
    # The same steps with plain SGD on the all-reduced gradient.
    plain = {"reversed": Reversed, "mixed": MixedDtypes}[net]()
    plain.load_state_dict(reference)
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.1)
    for _ in range(steps):
        plain(x).square().mean().backward()
        for p in plain.parameters():
            dist.all_reduce(p.grad)
            p.grad.div_(dist.get_world_size())
        optimizer.step()
        optimizer.zero_grad()
    diff = max((a - b).abs().max().item() for a, b in zip(
        plain.state_dict().values(), model.state_dict().values(), strict=True))
    result = {"buckets": len(dear._buckets), "launched_by_mid_backward": counts, "diff": diff}
    dear.close()
    return result
