"""Code that runs on every rank of a test pool: models, data, and the DDP-vs-DeAR training runs.

Each function returns something small and picklable for the test to assert on.
"""

from __future__ import annotations

import contextlib
import logging

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.checkpoint import checkpoint

from wow_ray.dear import DeAR, DeARConfig

VOCAB, WIDTH = 48, 24


class TiedNet(nn.Module):
    """A small language-model-like net with the awkward parts: an output layer tied to the
    embedding, a layer no forward uses, a layer used only on some steps, a raw parameter used
    by the root module's own forward, and a tensor wider than a bucket."""

    def __init__(self, tied: bool = True, sometimes: bool = False, with_unused: bool = True,
                 checkpointing: str | None = None) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.scale = nn.Parameter(torch.ones(WIDTH))
        self.hidden = nn.Sequential(nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(),
                                    nn.Linear(4 * WIDTH, WIDTH))
        if sometimes:
            self.rare = nn.Linear(WIDTH, WIDTH)
        if with_unused:
            self.unused = nn.Linear(WIDTH, 7)
        self.checkpointing = checkpointing  # None, "reentrant" or "non_reentrant"
        self.head = nn.Linear(WIDTH, VOCAB, bias=False)
        if tied:
            self.head.weight = self.embed.weight
        self.sometimes = sometimes
        self.calls = 0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) * self.scale
        if self.checkpointing is None:
            h = h + self.hidden(h)
        else:
            reentrant = self.checkpointing == "reentrant"
            h = h + checkpoint(self.hidden, h, use_reentrant=reentrant)
        self.calls += 1
        if self.sometimes and self.calls % 3 == 0:
            h = h + self.rare(h)
        return self.head(h)


def batch(step: int, micro: int = 0, size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's data for one micro-batch: different on every rank, step and micro-batch."""
    g = torch.Generator().manual_seed(1000 * step + 10 * dist.get_rank() + micro)
    tokens = torch.randint(0, VOCAB, (size, 5), generator=g)
    return tokens, torch.roll(tokens, 1, dims=1)


def make_optimizer(kind: str, params: list) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-3)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.05)
    raise ValueError(kind)


def _loss(model: nn.Module, step: int, micro: int) -> torch.Tensor:
    tokens, targets = batch(step, micro)
    return F.cross_entropy(model(tokens).reshape(-1, VOCAB), targets.reshape(-1))


def train_ddp(kind: str, steps: int, accum: int, clip: float | None, model_kw: dict,
              net: type[nn.Module] = TiedNet) -> dict:
    torch.manual_seed(0)
    if "checkpointing" in model_kw:
        model_kw = {**model_kw, "checkpointing": None}  # checkpointing: same math
    model = net(**model_kw)
    ddp = DDP(model, find_unused_parameters=True)
    opt = make_optimizer(kind, model.parameters())
    for step in range(steps):
        for micro in range(accum):
            sync = micro == accum - 1
            with ddp.no_sync() if not sync else contextlib.nullcontext():
                (_loss(ddp, step, micro) / accum).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_dear(kind: str, steps: int, accum: int, clip: float | None, model_kw: dict,
               config: dict, hooks: dict | None = None,
               net: type[nn.Module] = TiedNet) -> tuple[dict, DeAR]:
    """The same run as train_ddp, with DeAR. `hooks` maps a step to a callable(dear) run
    before that step's forward (re-bucketing, evaluation, checkpoints...)."""
    torch.manual_seed(0)
    model = net(**model_kw)
    dear = DeAR(model, lambda groups: make_optimizer(kind, groups), DeARConfig(**config))
    for step in range(steps):
        if hooks and step in hooks:
            hooks[step](dear)
        for micro in range(accum):
            sync = micro == accum - 1
            with dear.no_sync() if not sync else contextlib.nullcontext():
                (_loss(dear, step, micro) / accum).backward()
        if clip is not None:
            dear.clip_grad_norm_(clip)
        dear.step()
    dear.flush()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, dear


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def ddp_vs_dear(kind: str, steps: int = 12, accum: int = 1, clip: float | None = None,
                model_kw: dict | None = None, config: dict | None = None) -> dict:
    """Train both ways; report how far apart the parameters ended and how far they moved."""
    model_kw = model_kw or {}
    config = {"bucket_size_mb": 0.004, **(config or {})}
    reference = train_ddp(kind, steps, accum, clip, model_kw)
    ours, dear = train_dear(kind, steps, accum, clip, model_kw, config)
    torch.manual_seed(0)
    initial = {k: v.detach().clone() for k, v in TiedNet(**model_kw).state_dict().items()}
    result = {"diff": max_difference(reference, ours), "moved": max_difference(initial, ours),
              "buckets": len(dear._buckets), "steps": dear.steps,
              "split_params": sum(len(s.buckets) > 1 for s in dear._slots),
              "unused_untouched": torch.equal(ours["unused.weight"], initial["unused.weight"])
              if "unused.weight" in ours else True}
    dear.close()
    params = list(dear.module.parameters())
    storages = {p.untyped_storage().data_ptr() for p in params}
    result["plain_after_close"] = len(storages) == len(params) and all(
        torch.equal(p, ours[n]) for n, p in dear.module.named_parameters())
    return result


def lockstep(kind: str, iterations: int = 8) -> dict:
    """DDP and DeAR side by side, iteration by iteration, through the awkward control flow:
    evaluation under no_grad right after a step (all-gathers still in flight) and between a
    no_sync() forward and its backward (which must still not communicate), state_dict()
    right after a step, two synchronised backward passes before one step, a step after
    accumulating only under no_sync(), a second step with no backward in between (must do
    nothing), stepping through `model.optimizer.step()` instead of `model.step()`, and a
    learning-rate scheduler that must survive re-bucketing."""
    torch.manual_seed(0)
    ref_model = TiedNet()
    ddp = DDP(ref_model, find_unused_parameters=True)
    ref_opt = make_optimizer(kind, ref_model.parameters())
    torch.manual_seed(0)
    model = TiedNet()
    dear = DeAR(model, lambda groups: make_optimizer(kind, groups),
                DeARConfig(bucket_size_mb=0.004, find_unused_parameters=True))
    schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)
                  for o in (ref_opt, dear.optimizer)]
    eval_diff, state_diff, extra_steps, deferred = 0.0, 0.0, 0, True
    probe = batch(99)[0]
    for step in range(iterations):
        if step == iterations // 2:
            dear.rebucket(0.002)
        mode = step % 4
        for micro in range(2 if mode in (1, 2) else 1):
            last = micro == (2 if mode in (1, 2) else 1) - 1
            with ddp.no_sync() if (mode == 2 and not last) else contextlib.nullcontext():
                _loss(ddp, step, micro).backward()
            with dear.no_sync() if mode == 2 else contextlib.nullcontext():
                loss = _loss(dear, step, micro)
            if mode == 2:  # evaluation between a no_sync forward and its backward
                with torch.no_grad():
                    dear(probe)
            loss.backward()  # a backward outside the context follows its forward's decision
            if mode == 2:
                deferred &= not dear._rs_inflight
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
        before = dear.steps
        (dear.optimizer.step if mode == 3 else dear.step)()
        if mode == 3:
            dear.step()  # nothing new to apply
            dear.optimizer.step()
        extra_steps += dear.steps - before - 1
        for scheduler in schedulers:
            scheduler.step()
        dear.eval()
        ref_model.eval()
        with torch.no_grad():
            eval_diff = max(eval_diff, (dear(probe) - ref_model(probe)).abs().max().item())
        dear.train()
        ref_model.train()
        if mode == 0:  # checkpoint straight after a step: the state must already be complete
            dear.step()
            state_diff = max(state_diff, max_difference(model.state_dict(),
                                                        ref_model.state_dict()))
    final = max_difference({k: v.detach().clone() for k, v in model.state_dict().items()},
                           ref_model.state_dict())
    dear.close()
    return {"eval_diff": eval_diff, "state_diff": state_diff, "final": final,
            "extra_steps": extra_steps, "steps": dear.steps, "no_sync_deferred": deferred}


def checkpoint_resume(kind: str, full_optimizer: bool, steps: int = 10, at: int = 5) -> dict:
    """Train `steps` steps straight; separately, restore the state saved after `at` steps into a
    freshly built (differently initialised) model and train the rest: same parameters?"""
    import io

    config = DeARConfig(bucket_size_mb=0.004, find_unused_parameters=True)
    saved = io.BytesIO()

    def save(d: DeAR) -> None:
        torch.save(d.state_dict(full_optimizer=full_optimizer), saved)

    straight, dear = train_dear(kind, steps, 2, 1.0, {}, config.to_dict(), hooks={at: save})
    dear.close()
    saved.seek(0)
    state = torch.load(saved, weights_only=False)
    torch.manual_seed(123)
    model = TiedNet()
    resumed_dear = DeAR(model, lambda groups: make_optimizer(kind, groups),
                        DeARConfig(bucket_size_mb=0.01, find_unused_parameters=True))
    resumed_dear.load_state_dict(state)
    for step in range(at, steps):
        for micro in range(2):
            with resumed_dear.no_sync() if micro == 0 else contextlib.nullcontext():
                (_loss(resumed_dear, step, micro) / 2).backward()
        resumed_dear.clip_grad_norm_(1.0)
        resumed_dear.step()
    resumed = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = {"identical": all(torch.equal(straight[k], resumed[k]) for k in straight),
              "diff": max_difference(straight, resumed), "steps": resumed_dear.steps,
              "bucket_size_mb": resumed_dear.bucket_size_mb}
    resumed_dear.close()
    return result


def rebucket_and_tune(kind: str) -> dict:
    """Re-cutting the buckets mid-training (by hand, and by the tuner) moves the optimizer
    state with its elements: the run still matches DDP."""
    reference = train_ddp(kind, 12, 1, None, {})
    hooks = {3: lambda d: d.rebucket(0.002), 6: lambda d: d.rebucket(0.02)}
    by_hand, dear = train_dear(kind, 12, 1, None, {},
                               {"bucket_size_mb": 0.004, "find_unused_parameters": True}, hooks)
    dear.close()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger("wow_ray.dear")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    tuned, dear = train_dear(kind, 12, 1, None, {}, {
        "bucket_size_mb": 0.004, "find_unused_parameters": True, "tune_bucket_size": True,
        "tune_bounds_mb": (0.001, 0.03), "tune_trials": 3, "tune_warmup_iters": 1,
        "tune_iters_per_trial": 1})
    tuner = dear.state_dict()["dear"]["tuner"]
    result = {"by_hand": max_difference(reference, by_hand),
              "tuned": max_difference(reference, tuned), "tuner_done": tuner["done"],
              "chosen": tuner["best_mb"], "bucket_size_mb": dear.bucket_size_mb,
              "trials": [size for size, _ in tuner["observations"]],
              "logged": [r.getMessage() for r in records]}
    logger.removeHandler(handler)
    logger.setLevel(level)
    dear.close()
    return result


def save_full_state(path: str, kind: str = "adamw") -> bool:
    """Train a few steps and save the world-size-independent state (rank 0 writes it)."""
    _, dear = train_dear(kind, 4, 1, 1.0, {}, {"bucket_size_mb": 0.004,
                                               "find_unused_parameters": True})
    state = dear.state_dict(full_optimizer=True)
    if dist.get_rank() == 0:
        torch.save(state, path)
    dist.barrier()
    dear.close()
    return True


def reload_full_state(path: str, kind: str = "adamw") -> dict:
    """Load a full state saved at another world size, then assemble it again: same state?"""
    saved = torch.load(path, weights_only=False)
    torch.manual_seed(7)
    model = TiedNet()
    dear = DeAR(model, lambda groups: make_optimizer(kind, groups),
                DeARConfig(bucket_size_mb=0.05, find_unused_parameters=True))
    dear.load_state_dict(saved)
    again = dear.state_dict(full_optimizer=True)
    same_optimizer = all(
        torch.equal(a, b) for key in saved["optimizer"]["tensors"]
        for a, b in zip(saved["optimizer"]["tensors"][key], again["optimizer"]["tensors"][key],
                        strict=True))
    result = {"world": dist.get_world_size(), "saved_world": saved["dear"]["world_size"],
              "same_model": max_difference(saved["model"], again["model"]) == 0.0,
              "same_optimizer": same_optimizer and saved["optimizer"]["scalars"].keys()
              == again["optimizer"]["scalars"].keys(),
              "keys": sorted(saved["optimizer"]["tensors"]), "steps": dear.steps}
    dear.close()
    return result
