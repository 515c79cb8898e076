"""DeAR: data-parallel training whose all-reduce is split around the optimizer step.

    model = DeAR(model, lambda groups: torch.optim.AdamW(groups, lr=3e-4))
    for batch in data:
        loss = model(batch).loss
        loss.backward()                 # buckets are reduce-scattered while backward runs
        model.clip_grad_norm_(1.0)      # optional: one scalar all-reduce
        model.step()                    # each rank steps its shard; all-gathers start
    model.flush()                       # the last update is in every rank's parameters

One iteration, on every rank:
1. backward: a parameter's post-accumulate-grad hook marks it done; a bucket whose parameters
   are all done is divided by the world size (as DDP) and reduce-scattered, in a fixed order
   on all ranks: last bucket first, buckets being numbered in the order the first forward
   used their parameters (rank 0's, as DDP rebuilds its buckets); the end of backward
   launches the buckets that never completed (unused parameters);
2. step: wait for the reduce-scatters, optionally clip, let the user's optimizer
   (built by `optimizer_factory` over this rank's shard only) update the shard, then start
   the all-gathers of the updated shards, first bucket first;
3. next forward: each module's forward pre-hook waits for the all-gather of the buckets that
   hold its parameters, and no others; the end of the forward waits for any left.

The updated parameters are complete whenever the model is used: a module's forward (with or
without grad) waits for the buckets of the parameters it registers and of the children it reads
without calling them (forward_waits.py), the end of the forward and `state_dict()`,
`load_state_dict()` and `flush()` wait for all. (Code that reads a parameter between step()
and the next forward outside the model's forward must call `flush()` first.) Gradients are
sharded: between a synchronising backward and step(), `p.grad` refuses to be read
(gradients.py); clip with `model.clip_grad_norm_`. Buffers follow rank 0's at each forward,
as DDP's broadcast_buffers. An update is applied exactly once: only by the optimizer's `step()`,
which does nothing when no gradient arrived since the last one; gradients accumulated under
`no_sync()` are reduced by the next synchronised backward or by step() itself.

The class is one state machine driven by autograd, module and optimizer hooks; it is kept in
one file, a little over the usual length, because its invariants (what is in flight, which
buffer may be written when) are easiest to check in one place. Layout, collectives, optimizer
state, checkpoints and the tuner live in their own modules.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.optim import Optimizer

from . import optimizer_state as ostate
from .checkpoint import load_folder, load_training_state, save_folder, training_state
from .collectives import Communicator, Handle, broadcast_coalesced
from .config import DeARConfig
from .forward_waits import ForwardWaits
from .gradients import PendingGradient, clip_shards_, pending_alias
from .graph import output_tensors, reachable_leaves
from .guards import check_arguments, check_unchanged
from .layout import (
    ParamSlot,
    allocate_spaces,
    attach_spaces,
    make_buckets,
    make_segments,
    relayout_spaces,
    shard_grad_chunk,
)
from .tuner import BucketSizeTuner

logger = logging.getLogger("wow_ray.dear")

OptimizerFactory = Callable[[list[dict]], Optimizer]


# The forward hooks run eagerly inside a compiled forward (one graph break each): traced,
# their bookkeeping would put guards on DeAR's state and recompile at every bucket index.
_eager = torch.compiler.disable


class DeAR(nn.Module):
    """Wraps `module` for data-parallel training with decoupled all-reduce (see module doc).

    optimizer_factory: called once with torch.optim parameter groups (a list of dicts) that
        hold this rank's shard; returns any torch.optim optimizer. Available as `.optimizer`
        (for learning-rate schedulers); `model.step()` and `model.optimizer.step()` are the same.
    param_group_fn: optional `(name, parameter) -> dict` of per-group options (for example
        `{"weight_decay": 0.0}` for biases); parameters with equal dicts share a group.
    Construct it on every rank at the same point, after moving the model to its device.
    """

    def __init__(self, module: nn.Module, optimizer_factory: OptimizerFactory,
                 config: DeARConfig | None = None, *,
                 process_group: dist.ProcessGroup | None = None,
                 param_group_fn: Callable[[str, nn.Parameter], dict] | None = None) -> None:
        super().__init__()
        config = DeARConfig() if config is None else config
        check_arguments(module, optimizer_factory, config)
        if not dist.is_initialized():
            raise RuntimeError("DeAR needs torch.distributed to be initialised first")
        self.module = module
        self.config = config
        self.process_group = process_group if process_group is not None else dist.group.WORLD
        self.world_size = dist.get_world_size(self.process_group)
        self.rank = dist.get_rank(self.process_group)
        self._group_options: list[dict] = []
        named = [(name, p, self._group_of(name, p, param_group_fn))
                 for name, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the module has no trainable parameters")
        # Everything that can fail on a bad argument runs before the model is touched: the
        # flat buffers hold copies until attach_spaces() makes the parameters views of them.
        self._slots, self._spaces = allocate_spaces(named, self.world_size)
        self._frozen = [(n, p) for n, p in module.named_parameters() if not p.requires_grad]
        self._waits = ForwardWaits(module, self._slots)
        self._use_position: list[int] | None = None  # registration order until measured
        self._layout_fixed = False  # the first forward measures the order of use
        self._set_buckets(self.config.bucket_size_mb)
        groups = [{"params": [s.tensor for s in self._segments if s.group == index], **options}
                  for index, options in enumerate(self._group_options)]
        self.optimizer = optimizer_factory(groups)
        self._check_optimizer()
        attach_spaces(self._slots, self._spaces)
        self._pending_grads = [pending_alias(s.grad_view, s.name) for s in self._slots]
        self._grads_pending = False  # some p.grad holds a PendingGradient
        if self.config.broadcast_init:
            self._broadcast_from_rank0()
        self._comm = Communicator(self.process_group, self.config.collective)
        self._tuner = self._make_tuner() if self.config.tune_bucket_size else None
        self._steps = 0
        self._last_step_end: float | None = None
        self._no_sync_depth = 0
        self._sync_this_backward = True
        self._sync_buffers_next = True  # as DDP: after a synchronised training forward
        self._backward_id: int | None = None
        self._hooks: list = []
        self._install_hooks()
        self._reset_iteration()

    # ------------------------------------------------------------------ construction

    def _group_of(self, name: str, param: nn.Parameter, fn: Callable | None) -> int:
        options = dict(fn(name, param)) if fn is not None else {}
        if options not in self._group_options:
            self._group_options.append(options)
        return self._group_options.index(options)

    def _broadcast_from_rank0(self) -> None:
        """Every rank starts from rank 0's parameters (frozen ones too) and buffers, as DDP."""
        with torch.no_grad():
            for space in self._spaces:
                dist.broadcast(space.params, group=self.process_group, group_src=0)
            broadcast_coalesced([*(p for _, p in self._frozen), *self.module.buffers()],
                                self.process_group)

    def _set_buckets(self, bucket_size_mb: float) -> None:
        """(Re)cut the spaces into buckets and derive everything that depends on the cut."""
        self.bucket_size_mb = float(bucket_size_mb)
        self._buckets = make_buckets(self._slots, self._spaces, bucket_size_mb, self.world_size,
                                     self._use_position)
        self._segments = make_segments(self._slots, self._spaces, self._buckets,
                                       self.world_size, self.rank)
        self._waits.rebucket()
        self._ag_inflight: dict[int, Handle] = {}
        self._ag_next = len(self._buckets)  # nothing to gather until a step

    def _check_optimizer(self) -> None:
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError("optimizer_factory must return a torch.optim.Optimizer, got "
                            f"{type(self.optimizer).__name__}")
        ours = [[id(s.tensor) for s in self._segments if s.group == g]
                for g in range(len(self._group_options))]
        theirs = [[id(p) for p in group["params"]] for group in self.optimizer.param_groups]
        if ours != theirs:
            raise ValueError("optimizer_factory must build the optimizer over exactly the "
                             "parameter groups it is given, in the same order")

    def _make_tuner(self) -> BucketSizeTuner:
        c = self.config
        return BucketSizeTuner(c.tune_bounds_mb, c.tune_trials, c.tune_warmup_iters,
                               c.tune_iters_per_trial, initial_mb=c.bucket_size_mb)

    def _install_hooks(self) -> None:
        for slot in self._slots:
            self._hooks.append(slot.param.register_post_accumulate_grad_hook(
                partial(self._on_grad_ready, slot)))
        # The root's first: a forward of the whole model starts before its own module hook.
        self._hooks.append(self.module.register_forward_pre_hook(self._before_forward))
        for module in self._waits.modules:
            self._hooks += [module.register_forward_pre_hook(self._before_module),
                            module.register_forward_hook(self._after_module)]
        self._hooks += [
            self.module.register_forward_hook(self._after_forward),
            self.module.register_state_dict_pre_hook(lambda *_: self.flush()),
            self.module.register_load_state_dict_pre_hook(lambda *_: self._quiesce()),
            self.optimizer.register_step_pre_hook(lambda *_: self._prepare_step()),
            self.optimizer.register_step_post_hook(lambda *_: self._finish_step()),
        ]

    def _reset_iteration(self) -> None:
        """Per-iteration bookkeeping, fresh after every step (and at construction)."""
        n_buckets = len(self._buckets)
        self._rs_inflight: dict[int, Handle] = {}
        self._reduction_open = False  # a finished backward's reduce-scatters not yet waited
        self._shard_filled = [False] * n_buckets  # bucket's shard gradient holds a sum
        self._unreduced = False  # gradients accumulated that no reduce-scatter has taken yet
        self._used = [0.0] * len(self._slots)  # got a gradient since the last step
        self._prepared = False
        self._stepping = False
        self._guard: ostate.UnusedGuard | None = None
        self._reset_backward()

    def _reset_backward(self) -> None:
        """Per-backward bookkeeping of which buckets are complete and launched."""
        self._fired = [False] * len(self._slots)
        self._remaining = [len(b.params) for b in self._buckets]
        self._next_rs = len(self._buckets) - 1  # reduce-scatters go last bucket first

    # ------------------------------------------------------------------ forward

    def forward(self, *args: object, **kwargs: object) -> object:
        return self.module(*args, **kwargs)

    @_eager
    def _before_forward(self, module: nn.Module, args: object) -> None:
        check_unchanged(self._slots, self._frozen, self.device)
        self._waits.start()
        # Collectives only in training forwards, which every rank runs: evaluation (no grad)
        # may run on some ranks only, through the plain module, which carries these hooks.
        if torch.is_grad_enabled() and self.config.broadcast_buffers and self._sync_buffers_next:
            self._broadcast_buffers()
        if torch.is_grad_enabled():
            # DDP decides at forward time whether the coming backward synchronises; so do we
            # (a no_grad forward, evaluation say, prepares no backward and decides nothing).
            self._sync_this_backward = self._no_sync_depth == 0
            # The coming backward accumulates into the gradient buffers: an earlier
            # backward's reduce-scatters (no step in between) must be done with them, and
            # the launch bookkeeping starts afresh for the backward this forward prepares.
            self._wait_reduce_scatters()
            self._reset_backward()
            self._show_grads()

    @_eager
    def _before_module(self, module: nn.Module, args: object) -> None:
        for bucket in self._waits.entered(module):
            self._wait_all_gather(bucket)

    @_eager
    def _after_module(self, module: nn.Module, args: object, output: object) -> None:
        self._waits.finished(module)

    def _broadcast_buffers(self) -> None:
        """Rank 0's buffers everywhere, without bumping their version counters (as DDP)."""
        buffers = list(self.module.buffers())
        if buffers:
            with torch.no_grad(), torch.autograd._unsafe_preserve_version_counter(
                    tuple(buffers)):
                broadcast_coalesced(buffers, self.process_group)

    @_eager
    def _after_forward(self, module: nn.Module, args: object, output: object) -> None:
        if torch.is_grad_enabled():
            self._sync_buffers_next = self._no_sync_depth == 0
        # Parameters read outside their own module, or modules that did not run: complete
        # everything before backward or user code can touch a bucket still being gathered.
        self.flush()
        if not self._layout_fixed and torch.is_grad_enabled():
            self._layout_fixed = True
            # A compiled graph saved the parameters for its backward: moving them now would
            # fail its version check. Compiled models keep the registration order.
            if (self._steps == 0 and not self._unreduced and not self.optimizer.state
                    and not _compiled(self)):
                self._adopt_use_order(self._waits.use_order(), from_rank0=True)
        if not torch.is_grad_enabled():
            return
        # A backward from this output starts in the outermost autograd graph task: note it
        # there, so that nested backward passes (reentrant activation checkpointing) count as
        # part of the same backward and only the outermost one's end launches what is left.
        for tensor in output_tensors(output):
            if tensor.requires_grad:
                tensor.register_hook(self._on_backward_begin)
        if self.config.find_unused_parameters and self._sync_this_backward:
            self._mark_unreachable(output)

    def _mark_unreachable(self, output: object) -> None:
        """Parameters the output does not depend on will get no gradient: count them done."""
        reached = reachable_leaves(output)
        for slot in self._slots:
            if id(slot.param) not in reached and not self._fired[slot.index]:
                self._mark_done(slot)
        self._launch_ready_reduce_scatters()

    # ------------------------------------------------------------------ backward

    def _on_grad_ready(self, slot: ParamSlot, param: torch.Tensor) -> None:
        if type(param.grad) is PendingGradient:  # accumulated in place into our buffer
            param.grad = slot.grad_view
        elif param.grad.data_ptr() != slot.grad_view.data_ptr():
            # The gradient was set to None (zero_grad) or replaced: take it into our buffer.
            slot.grad_view.copy_(param.grad)
            param.grad = slot.grad_view
        if self._backward_id is None:  # the loss did not come from the wrapped model's output
            self._start_backward(torch._C._current_graph_task_id())
        self._unreduced = True
        self._used[slot.index] = 1.0
        if not self._sync_this_backward:
            return
        if self._fired[slot.index]:
            raise RuntimeError(
                f"parameter {slot.name!r} got a gradient after its bucket was reduced: it is "
                "used twice under reentrant activation checkpointing, or by an earlier forward "
                "whose output the loss also uses, or find_unused_parameters could not see it "
                "(reentrant checkpointing hides parameters from the graph): use "
                "use_reentrant=False, or one forward per backward")
        self._mark_done(slot)
        self._launch_ready_reduce_scatters()

    def _on_backward_begin(self, grad: torch.Tensor) -> None:
        backward_id = torch._C._current_graph_task_id()
        if backward_id != self._backward_id:
            self._start_backward(backward_id)

    def _start_backward(self, backward_id: int) -> None:
        if self._reduction_open:
            raise RuntimeError(
                "a backward pass started while an earlier one's gradients were still being "
                "reduced; run a forward pass of the wrapped model (or step()) in between")
        self._backward_id = backward_id
        torch.autograd.Variable._execution_engine.queue_callback(self._end_backward)

    def _mark_done(self, slot: ParamSlot) -> None:
        self._fired[slot.index] = True
        for bucket in slot.buckets:
            self._remaining[bucket] -= 1

    def _launch_ready_reduce_scatters(self) -> None:
        while self._next_rs >= 0 and self._remaining[self._next_rs] == 0:
            self._launch_reduce_scatter(self._next_rs)
            self._next_rs -= 1

    def _end_backward(self) -> None:
        self._backward_id = None
        if self._sync_this_backward:
            self._launch_all_reduce_scatters()  # buckets with parameters that got no gradient
            self._reduction_open = True  # until waited: no backward may write the buffers

    def _launch_all_reduce_scatters(self) -> None:
        while self._next_rs >= 0:
            self._launch_reduce_scatter(self._next_rs)
            self._next_rs -= 1
        self._unreduced = False
        self._reset_backward()

    def _launch_reduce_scatter(self, index: int) -> None:
        bucket = self._buckets[index]
        space = self._spaces[bucket.space]
        first = not self._shard_filled[index]
        self._shard_filled[index] = True
        grads = space.grads[bucket.start:bucket.stop]
        grads.div_(self.world_size)  # averaged before summing, as DDP (no fp16 overflow)
        for slot_index in bucket.params:  # p.grad is partial sums from now on: refuse reads
            self._slots[slot_index].param.grad = self._pending_grads[slot_index]
        self._grads_pending = True
        self._rs_inflight[index] = self._comm.reduce_scatter(
            grads, then=partial(self._absorb, grads, shard_grad_chunk(space, bucket,
                                                                      self.world_size), first))

    def _absorb(self, grads: torch.Tensor, shard: torch.Tensor, first: bool) -> None:
        """Move this rank's reduced chunk out of the bucket and clear the bucket for the next
        accumulation (runs on the ring thread for gloo, overlapping the caller's work)."""
        mine = grads.view(self.world_size, -1)[self.rank]
        if first:
            shard.copy_(mine)
        else:
            shard.add_(mine)
        grads.zero_()

    def _wait_reduce_scatters(self) -> None:
        for handle in self._rs_inflight.values():
            handle.wait()
        self._rs_inflight = {}
        self._reduction_open = False

    def _show_grads(self) -> None:
        """Give every p.grad its real view back (the buckets taken are reduced and cleared)."""
        if self._grads_pending:
            for slot in self._slots:
                slot.param.grad = slot.grad_view
            self._grads_pending = False

    # ------------------------------------------------------------------ step

    def step(self) -> None:
        """The optimizer step (same as `model.optimizer.step()`)."""
        self.optimizer.step()

    def _prepare_step(self) -> None:
        """Before the optimizer runs: reduced, averaged shard gradients, or None if none came."""
        if self._prepared:
            return
        if self._backward_id is not None:
            raise RuntimeError("the optimizer cannot step during a backward pass")
        if self._unreduced:  # accumulated under no_sync() only, or after the last reduction
            self._launch_all_reduce_scatters()
        self._wait_reduce_scatters()
        self.flush()  # the step writes shards that an all-gather may still be sending
        self._stepping = any(self._shard_filled)
        for segment in self._segments:
            segment.tensor.grad = segment.grad if self._stepping else None
        if self._stepping and self.config.find_unused_parameters:
            self._guard_unused()
        self._prepared = True

    def _guard_unused(self) -> None:
        used = torch.tensor(self._used, device=self._spaces[0].device)
        dist.all_reduce(used, group=self.process_group)
        unused = [i for i, count in enumerate(used.tolist()) if count == 0]
        if unused:
            self._guard = ostate.UnusedGuard(self.optimizer, self._segments, self._slots, unused)

    def _finish_step(self) -> None:
        """After the optimizer ran: start the all-gathers that the next forward waits for."""
        stepped = self._stepping
        if self._guard is not None:
            self._guard.restore()
        self._reset_iteration()
        self._show_grads()
        self._waits.start()
        if not stepped:
            return
        self._steps += 1
        self._ag_next = 0  # every bucket's shard changed: all of them need gathering
        if self._tuner is not None and self._tune():
            return  # re-bucketing gathered the parameters already
        self._top_up_all_gathers(0)

    def clip_grad_norm_(self, max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
        """Clip the averaged gradient by its global norm, as torch.nn.utils.clip_grad_norm_ on
        the full gradient would; one scalar all-reduce. Call between backward and step."""
        self._prepare_step()
        device = self._spaces[0].device
        if not self._stepping:
            return torch.zeros((), device=device)
        return clip_shards_([space.shard_grads for space in self._spaces], max_norm, norm_type,
                            self.process_group)

    # ------------------------------------------------------------------ all-gather

    def _top_up_all_gathers(self, needed: int) -> None:
        """Start all-gathers in bucket order up to `needed` plus the configured lookahead."""
        lookahead = self.config.all_gather_lookahead
        limit = len(self._buckets) if lookahead is None else min(
            len(self._buckets), needed + 1 + lookahead)
        while self._ag_next < limit:
            bucket = self._buckets[self._ag_next]
            flat = self._spaces[bucket.space].params[bucket.start:bucket.stop]
            self._ag_inflight[self._ag_next] = self._comm.all_gather(flat)
            self._ag_next += 1

    def _wait_all_gather(self, index: int) -> None:
        if index >= self._ag_next and self._ag_next < len(self._buckets):
            self._top_up_all_gathers(index)
        handle = self._ag_inflight.pop(index, None)
        if handle is not None:
            handle.wait()
            self._top_up_all_gathers(index)

    def flush(self) -> None:
        """Wait until every rank's latest update is in this rank's parameters."""
        if self._ag_next < len(self._buckets):
            self._top_up_all_gathers(len(self._buckets))
        for index in sorted(self._ag_inflight):
            self._ag_inflight.pop(index).wait()

    synchronize = flush

    def _quiesce(self) -> None:
        """No collective in flight and no gradient pending (before loading a checkpoint)."""
        self.flush()
        self._wait_reduce_scatters()
        for space in self._spaces:
            space.grads.zero_()
        self._reset_iteration()
        self._show_grads()

    # ------------------------------------------------------------------ user controls

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (forward and backward inside); the next synchronised
        backward, or step(), reduces everything accumulated."""
        self._no_sync_depth += 1
        try:
            yield
        finally:
            self._no_sync_depth -= 1

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Discard gradients accumulated since the last step. Gradients live in DeAR's buffers
        and step() already clears them, so this is only needed to drop a partial accumulation;
        `set_to_none` is accepted for compatibility and ignored."""
        self._backward_id = None  # also recovers from a backward that raised half-way
        if not (self._unreduced or self._rs_inflight or any(self._shard_filled)):
            return
        self._wait_reduce_scatters()
        for space in self._spaces:
            space.grads.zero_()
        self._grads_pending = True  # every p.grad gets its view back, whatever it held
        self._show_grads()
        self._reset_iteration()

    # ------------------------------------------------------------------ layout

    def _adopt_use_order(self, order: list[int], from_rank0: bool = False) -> None:
        """Lay the parameters out in the order the forward uses them (`order`: slot indices),
        so buckets fill in the order gradients arrive and empty in the order the forward
        needs them, as DDP rebuilds its buckets after the first iteration. Only with nothing
        in flight and no optimizer state worth keeping (the first forward; a checkpoint load)."""
        if from_rank0:  # every rank must cut the same buckets
            agreed = torch.tensor(order, dtype=torch.int64, device=self.device)
            dist.broadcast(agreed, group=self.process_group, group_src=0)
            order = agreed.tolist()
        self._layout_fixed = True
        position = [0] * len(self._slots)
        for rank, index in enumerate(order):
            position[index] = rank
        if position == (self._use_position or list(range(len(self._slots)))):
            return
        self._use_position = position
        if relayout_spaces(self._slots, self._spaces, order):
            attach_spaces(self._slots, self._spaces)
            self._pending_grads = [pending_alias(s.grad_view, s.name) for s in self._slots]
        self._set_buckets(self.bucket_size_mb)
        ostate.use_segments(self.optimizer, self._segments)
        self.optimizer.state.clear()  # none yet, or about to be loaded
        self._reset_iteration()

    @property
    def use_order(self) -> list[int]:
        """The parameters (slot indices) in the order the layout follows (for checkpoints)."""
        position = self._use_position or list(range(len(self._slots)))
        return sorted(range(len(self._slots)), key=position.__getitem__)

    # ------------------------------------------------------------------ tuning

    def _tune(self) -> bool:
        """Feed the iteration time to the tuner; on a trial boundary agree on the next bucket
        size (mean time over ranks, rank 0's proposal). True if the buckets were re-cut."""
        now = time.perf_counter()
        previous, self._last_step_end = self._last_step_end, now
        if previous is None or self._tuner.done or not self._tuner.record(now - previous):
            return False
        device = self._spaces[0].device  # NCCL only reduces device tensors
        seconds = torch.tensor([self._tuner.trial_seconds], dtype=torch.float64, device=device)
        dist.all_reduce(seconds, group=self.process_group)
        proposal = torch.tensor([self._tuner.finish_trial(seconds.item() / self.world_size)],
                                dtype=torch.float64, device=device)
        dist.broadcast(proposal, group=self.process_group, group_src=0)
        size = proposal.item()
        self._tuner.accept(size)
        if self._tuner.done and self.rank == 0:
            logger.info("DeAR bucket size tuned: %g MB (trials: %s); pass "
                        "DeARConfig(bucket_size_mb=%g) to reuse it", size,
                        self._tuner.observations, size)
        changed = size != self.bucket_size_mb
        if changed:
            self.rebucket(size)
        self._last_step_end = time.perf_counter()  # the switch itself is not an iteration
        return changed

    def rebucket(self, bucket_size_mb: float) -> None:
        """Re-cut the buckets (a collective); the optimizer state follows its elements."""
        self.flush()  # shards are owned per bucket: complete the parameters under the old cut
        full = ostate.gather_full_state(self.optimizer, self._segments, self._spaces,
                                        self.process_group)
        self._set_buckets(bucket_size_mb)
        ostate.use_segments(self.optimizer, self._segments)
        ostate.scatter_full_state(self.optimizer, self._segments, full)
        self._reset_iteration()

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self, *args: object, full_optimizer: bool = False,
                   **kwargs: object) -> dict:
        """Training state: the complete model, this rank's optimizer shard (or with
        full_optimizer=True, a collective, everyone's, loadable at any world size) and DeAR's
        layout; see checkpoint.py. (Not nn.Module's flat dict: DeAR is the outermost module.)"""
        return training_state(self, full_optimizer)

    def load_state_dict(self, state_dict: dict, strict: bool = True, **kwargs: object) -> None:
        """Restore what `state_dict()` returned, on every rank (a collective)."""
        load_training_state(self, state_dict, strict)

    def save_checkpoint(self, folder: str | Path) -> None:
        """Write this rank's files of a checkpoint folder (every rank; see checkpoint.py)."""
        save_folder(self, folder)

    def load_checkpoint(self, folder: str | Path) -> int:
        """Restore a `save_checkpoint` folder (every rank); returns the steps already done."""
        return load_folder(self, folder)

    # ------------------------------------------------------------------ lifecycle

    def _apply(self, fn: Callable, recurse: bool = True) -> DeAR:
        raise RuntimeError("DeAR's parameters live in flat buffers: move or cast the model "
                           "before wrapping it")

    def close(self, unflatten: bool = True) -> None:
        """Flush, remove the hooks and stop the communication thread; the model is a plain
        module again. With `unflatten`, every parameter gets its own storage back (a copy),
        so savers that refuse tensors sharing memory (safetensors) take the model as it is."""
        self.flush()
        self._wait_reduce_scatters()
        self._show_grads()
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._comm.close()
        if unflatten:
            with torch.no_grad():
                for slot in self._slots:
                    slot.param.data = slot.param.data.clone()
                    slot.param.grad = None

    @property
    def device(self) -> torch.device:
        """Where the trainable parameters live (the first one's device)."""
        return self._spaces[0].device

    @property
    def steps(self) -> int:
        """Optimizer steps that updated the parameters (no-op steps do not count)."""
        return self._steps


def _compiled(module: nn.Module) -> bool:
    """Whether `module` or a module below it was compiled in place (`module.compile()`)."""
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in module.modules())
