"""What every rank runs: profile the model, measure the link, then time each scheduler.

`run_rank(config)` assumes torch.distributed is initialised (by `benchmarks/bench_comm.py`'s launcher in
network namespaces, or by Ray Train in `train_jobs/comm_benchmark.py`) and returns, on rank 0, one
JSON-able dict with everything the report and the performance model need:

1. the compute alone: the same model trained without any communication, on every rank at once
   (so the CPU is shared as in the real runs), timed like a method in every round (`local`);
2. a per-tensor profile of that compute (forward time per module, gradient-ready times in
   backward, the optimizer step), rank 0's medians: the performance model's `Workload`;
3. the link's alpha and beta, from gloo all-reduces of 4 KB to 16 MB fitted to a + b*m;
   how much slower the compute runs while all-reduces are in flight (on CPU the
   communication competes with it for the cores: gloo's threads, the kernel's TCP and `tbf`);
   and what gloo's own reduce-scatter and all-gather (FSDP2's) cost against an all-reduce of
   the same bytes (two ring halves): the model's `native_factor`, measured in the run;
4. for each tuned method (`schedulers.KNOBS`), in the first round, its knob searched with the
   tuner DeAR uses (same trials, same iterations per trial); later rounds reuse the choice;
5. per scheduler, per-iteration times (step end to step end, so DeAR's all-gathers that overlap
   the next forward are counted) over `iters` iterations after `warmup`, in `rounds` rounds that
   visit every method in turn, so drifts of the shared machine's load hit all methods alike.
"""

from __future__ import annotations

import os
import statistics
import threading
import time

import torch
import torch.distributed as dist
from pydantic import BaseModel, Field

from . import perfmodel
from .models import ModelSpec, build_model, fsdp_units, loss_fn, make_batches
from .schedulers import KNOBS, METHODS, build_scheduler


class BenchConfig(BaseModel):
    """One comparison: a model, the methods, how long to measure."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    methods: list[str] = Field(default_factory=lambda: list(METHODS))
    iters: int = Field(20, description="timed iterations per method (over all rounds)")
    warmup: int = Field(3, description="untimed iterations per method and round")
    rounds: int = Field(2, description="passes over the methods; iters are split between them")
    profile_iters: int = Field(3, description="iterations profiled per tensor")
    bucket_mb: float = Field(25.0, description="DDP's and fixed DeAR's bucket size")
    tune_trials: int = Field(8, description="DeAR tuned: bucket sizes tried")
    tune_warmup_iters: int = Field(1)
    tune_iters_per_trial: int = Field(2)
    allreduce_sizes: list[int] = Field(
        default_factory=lambda: [2**12, 2**16, 2**20, 2**22, 2**24],
        description="bytes of the all-reduces that measure alpha and beta")
    allreduce_repeats: int = Field(5)
    slowdown_iters: int = Field(4, description="compute iterations timed alone and under "
                                "communication, for the model's slowdown factor")
    lr: float = 0.01

    def model_post_init(self, _: object) -> None:
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"methods: unknown {sorted(unknown)}; choose from {METHODS}")
        if self.iters < self.rounds:
            raise ValueError("iters must be >= rounds")


def _make_optimizer(lr: float):
    return lambda params: torch.optim.SGD(params, lr=lr, momentum=0.9)


def _sync_clock() -> float:
    dist.barrier()
    return time.perf_counter()


def profile_workload(cfg: BenchConfig) -> perfmodel.Workload:
    """Per-tensor forward/backward times of this rank (medians over profile_iters); every rank
    runs it at once so that the CPU is shared as in the real runs."""
    rank = dist.get_rank()
    model = build_model(cfg.model)
    opt = _make_optimizer(cfg.lr)(list(model.parameters()))
    batches = make_batches(cfg.model, rank)
    names = {id(p): n for n, p in model.named_parameters()}
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    starts: dict[int, float] = {}
    ready: dict[str, float] = {}
    hooks = [m.register_forward_pre_hook(
        lambda m, _a: starts.__setitem__(id(m), time.perf_counter())) for m in owners]
    hooks += [p.register_post_accumulate_grad_hook(
        lambda p: ready.__setitem__(names[id(p)], time.perf_counter()))
        for p in model.parameters()]
    samples: list[tuple[dict, dict, float]] = []
    dist.barrier()
    for i in range(cfg.profile_iters + 1):
        starts.clear()
        ready.clear()
        x, y = batches[i % len(batches)]
        t0 = time.perf_counter()
        loss = loss_fn(model(x), y)
        t_fwd = time.perf_counter()
        loss.backward()
        t_bwd = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t_upd = time.perf_counter()
        if i == 0:
            continue
        fwd = {}
        ordered = sorted(owners, key=lambda m: starts[id(m)])
        for k, m in enumerate(ordered):
            end = starts[id(ordered[k + 1])] if k + 1 < len(ordered) else t_fwd
            begin = t0 if k == 0 else starts[id(m)]
            fwd[id(m)] = end - begin
        by_ready = sorted(ready, key=ready.get)
        bwd, previous = {}, t_fwd
        for name in by_ready:
            bwd[name] = ready[name] - previous
            previous = ready[name]
        bwd[by_ready[-1]] += t_bwd - previous
        samples.append((fwd, bwd, t_upd - t_bwd))
    for hook in hooks:
        hook.remove()
    dist.barrier()
    owner_of = {id(p): m for m in owners for p in m.parameters(recurse=False)}
    order = list(reversed(sorted(ready, key=ready.get)))  # forward order = reverse of backward
    by_name = dict(model.named_parameters())
    tensors, seen = [], set()
    for name in order:
        owner = owner_of[id(by_name[name])]
        fwd = 0.0
        if id(owner) not in seen:
            seen.add(id(owner))
            fwd = statistics.median(s[0][id(owner)] for s in samples)
        tensors.append(perfmodel.Tensor(
            name=name, bytes=by_name[name].numel() * by_name[name].element_size(), fwd_s=fwd,
            bwd_s=statistics.median(s[1][name] for s in samples)))
    index = {t.name: i for i, t in enumerate(tensors)}
    units = [[index[f"blocks.{b}.{n}"] for n, _ in unit.named_parameters()]
             for b, unit in enumerate(fsdp_units(model))]
    in_units = {i for u in units for i in u}
    units.insert(0, [i for i in range(len(tensors)) if i not in in_units])  # the root
    return perfmodel.Workload(name=cfg.model.name, tensors=tensors, batch=cfg.model.batch,
                              update_s=statistics.median(s[2] for s in samples),
                              fsdp_units=units)


def measure_allreduce(cfg: BenchConfig) -> dict[str, list[float]]:
    """Median seconds of gloo all-reduces of each size (barrier before each)."""
    medians = []
    for size in cfg.allreduce_sizes:
        buf = torch.zeros(size // 4)
        dist.all_reduce(buf)
        times = []
        for _ in range(cfg.allreduce_repeats):
            start = _sync_clock()
            dist.all_reduce(buf)
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return {"bytes": [float(s) for s in cfg.allreduce_sizes], "seconds": medians}


def measure_comm_slowdown(cfg: BenchConfig) -> float:
    """Compute time while gloo all-reduces of 16 MB run back to back in a second thread (on a
    group of their own), over the compute time alone, rank 0's medians: the performance
    model stretches compute that overlaps communication by this factor. All ranks keep
    all-reducing until every rank's compute is done (a MAX over a stop flag after each)."""
    group = dist.new_group(backend="gloo")
    stop = threading.Event()

    def traffic() -> None:
        payload, flag = torch.ones(2**22), torch.zeros(1)
        while True:
            dist.all_reduce(payload, group=group)
            flag.fill_(float(stop.is_set()))
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
            if flag.item():
                return

    def compute_times() -> list[float]:  # the model trained alone, as the `local` method
        return _time_method(cfg, "local", cfg.slowdown_iters, {})["times"]

    alone = compute_times()
    thread = threading.Thread(target=traffic, name="bench-traffic", daemon=True)
    thread.start()
    busy = compute_times()
    stop.set()
    thread.join()
    dist.destroy_process_group(group)
    return max(1.0, statistics.median(busy) / statistics.median(alone))


def measure_native_factor(cfg: BenchConfig) -> float:
    """gloo's reduce_scatter_tensor + all_gather_into_tensor (what FSDP2 calls) over one
    all-reduce of the same buffer (the largest of allreduce_sizes), medians: the model charges
    FSDP2's collectives this many ring halves."""
    world = dist.get_world_size()
    size = max(cfg.allreduce_sizes) // 4 // world * world
    full, shard = torch.zeros(size), torch.zeros(size // world)
    pair, single = [], []
    dist.all_reduce(full)
    dist.reduce_scatter_tensor(shard, full)
    for _ in range(cfg.allreduce_repeats):
        start = _sync_clock()
        dist.all_reduce(full)
        single.append(time.perf_counter() - start)
        start = _sync_clock()
        dist.reduce_scatter_tensor(shard, full)
        dist.all_gather_into_tensor(full, shard)
        pair.append(time.perf_counter() - start)
    return statistics.median(pair) / statistics.median(single)


def _mg_groups(cfg: BenchConfig, workload: perfmodel.Workload, net: perfmodel.Network,
               merge_s: float | None = None) -> list[list[int]]:
    """MG-WFBP's groups as indices into model.parameters(), decided on rank 0 (every rank must
    fuse the same tensors) from its profile and the measured alpha-beta (and the merge
    threshold `merge_s`, default the link's startup)."""
    plan = [None]
    if dist.get_rank() == 0:
        model = build_model(cfg.model)
        position = {n: i for i, (n, _) in enumerate(model.named_parameters())}
        groups = perfmodel.mgwfbp_plan(workload, net, dist.get_world_size(), merge_s)
        plan = [[[position[workload.tensors[i].name] for i in g] for g in groups]]
    dist.broadcast_object_list(plan, src=0)
    return plan[0]


def _time_method(cfg: BenchConfig, method: str, iters: int, knob: dict, tune: bool = False,
                 warmup: int | None = None) -> dict:
    """`iters` iterations of `method` built with `knob` (build_scheduler's keywords)."""
    rank = dist.get_rank()
    model = build_model(cfg.model)
    tune_fields = {"tune_trials": cfg.tune_trials, "tune_warmup_iters": cfg.tune_warmup_iters,
                   "tune_iters_per_trial": cfg.tune_iters_per_trial,
                   "tune_bounds_mb": _size_bounds(cfg)}
    sched = build_scheduler("dear_tuned" if tune else
                            ("dear" if method == "dear_tuned" else method),
                            model, _make_optimizer(cfg.lr), tune=tune_fields, **knob)
    batches = make_batches(cfg.model, rank)
    extra = {}
    warmup = cfg.warmup if warmup is None else warmup
    if tune:  # the tuner's iterations: trials * (warm-up + measured) and the first one
        warmup += cfg.tune_trials * (cfg.tune_warmup_iters + cfg.tune_iters_per_trial) + 1
    times, last = [], _sync_clock()
    tune_start = last
    for i in range(warmup + iters):
        x, y = batches[i % len(batches)]
        loss_fn(sched.module(x), y).backward()
        sched.step()
        now = time.perf_counter()
        if i >= warmup:
            times.append(now - last)
        elif tune and i == warmup - cfg.warmup - 1:
            extra["tuning_s"] = now - tune_start
        last = now
    if method.startswith("dear"):
        extra["bucket_mb"] = sched.dear.bucket_size_mb
    sched.close()
    dist.barrier()
    return {"times": times, **extra}


def _size_bounds(cfg: BenchConfig) -> tuple[float, float]:
    """The bucket (and FSDP unit) sizes every tuned method searches, MB."""
    model = build_model(cfg.model)
    return 0.25, max(1.0, sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20)


def _knob(cfg: BenchConfig, method: str, value: float | None, workload: perfmodel.Workload,
          net: perfmodel.Network, default_groups) -> dict:
    """build_scheduler's keywords for `method` at knob `value` (None: the default)."""
    name = KNOBS.get(method)
    if name == "merge_s":
        groups = default_groups if value is None else _mg_groups(cfg, workload, net, value)
        return {"mg_groups": groups}
    if name == "unit_mb":
        return {"unit_mb": value}
    return {"bucket_mb": cfg.bucket_mb if value is None else value,
            "mg_groups": default_groups}


def tune_baseline(cfg: BenchConfig, method: str, workload: perfmodel.Workload,
                  net: perfmodel.Network, default_groups) -> dict:
    """Search `method`'s knob as DeAR searches its bucket size: the same BucketSizeTuner,
    trials and iterations per trial (trial times averaged over ranks, rank 0's proposal
    taken). Each trial rebuilds the scheduler, so its first iteration is discarded too.
    Returns the chosen value, the trials and the seconds spent."""
    from wow_ray.dear import BucketSizeTuner

    world = dist.get_world_size()
    if KNOBS[method] == "merge_s":
        bounds, initial = perfmodel.merge_bounds_s(workload), net.allreduce(0, world)
    else:
        bounds, initial = _size_bounds(cfg), cfg.bucket_mb
    tuner = BucketSizeTuner(bounds, cfg.tune_trials, cfg.tune_warmup_iters,
                            cfg.tune_iters_per_trial, initial_mb=initial)
    start = _sync_clock()
    while not tuner.done:
        knob = _knob(cfg, method, tuner.current_mb, workload, net, default_groups)
        times = _time_method(cfg, method, cfg.tune_iters_per_trial, knob,
                             warmup=cfg.tune_warmup_iters + 1)["times"]
        seconds = torch.tensor([statistics.median(times)], dtype=torch.float64)
        dist.all_reduce(seconds)
        proposal = [tuner.finish_trial(seconds.item() / world)]
        dist.broadcast_object_list(proposal, src=0)
        tuner.accept(proposal[0])
    return {"knob": tuner.best_mb, "trials": [list(o) for o in tuner.observations],
            "tuning_s": time.perf_counter() - start}


def run_rank(cfg: BenchConfig) -> dict | None:
    """The whole measurement on this rank; rank 0 returns the results (see module doc)."""
    torch.set_num_threads(1)
    world, rank = dist.get_world_size(), dist.get_rank()
    started = time.time()
    workload = profile_workload(cfg)
    allreduce = measure_allreduce(cfg)
    intercept, slope = perfmodel.fit_line(allreduce["bytes"], allreduce["seconds"])
    net = perfmodel.Network.from_allreduce_fit("measured", intercept, slope, world)
    workload.comm_slowdown = measure_comm_slowdown(cfg)
    native_factor = measure_native_factor(cfg)
    mg_groups = (_mg_groups(cfg, workload, net)
                 if {"mgwfbp", "mgwfbp_tuned"} & set(cfg.methods) else None)
    timed = ["local", *cfg.methods]  # local: the compute alone, in the same rounds
    methods: dict[str, dict] = {m: {"times": []} for m in timed}
    chosen: dict[str, float] = {}  # tuned method: its knob, from the first round on
    for round_index in range(cfg.rounds):
        share = cfg.iters // cfg.rounds + (round_index < cfg.iters % cfg.rounds)
        for method in timed:
            if method in KNOBS and method != "dear_tuned" and method not in chosen:
                found = tune_baseline(cfg, method, workload, net, mg_groups)
                chosen[method] = found["knob"]
                methods[method].update({KNOBS[method]: found["knob"], **found})
            tune = method == "dear_tuned" and method not in chosen
            knob = _knob(cfg, method, chosen.get(method), workload, net, mg_groups)
            result = _time_method(cfg, method, share, knob, tune)
            if rank == 0:  # progress, for whoever watches a run of many minutes
                print(f"round {round_index + 1}/{cfg.rounds} {method}: median "
                      f"{statistics.median(result['times']):.3f} s", flush=True)
            methods[method]["times"] += result.pop("times")
            if tune:
                chosen[method] = result["bucket_mb"]
            if method == "mgwfbp_tuned":
                methods[method]["mg_groups"] = knob["mg_groups"]
            methods[method].update(result)
    compute = methods.pop("local")["times"]
    if rank != 0:
        return None
    return {"world": world, "config": cfg.model_dump(), "started": started,
            "duration_s": time.time() - started, "loadavg_end": list(os.getloadavg()),
            "compute_times": compute, "workload": workload.model_dump(),
            "allreduce": allreduce, "native_factor": native_factor, "network": net.model_dump(), "mg_groups": mg_groups,
            "param_names": [n for n, _ in build_model(cfg.model).named_parameters()],
            "methods": methods}
