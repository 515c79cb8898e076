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

The class is one state machine driven by autograd, module and optimizer hooks. This module
holds its state (every attribute is set in `__init__` and the `_reset_*` methods) and the
forward and step; its base classes hold the phases that touch that state: the backward's
reduce-scatters (reduction.py), the all-gathers (gathering.py), and re-cutting the buckets
(rebucketing.py). Construction-time checks (construction.py), layout, collectives, optimizer
state, checkpoints and the tuner live in their own modules.
"""

from __future__ import annotations

import contextlib
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
from .construction import broadcast_from_rank0, check_optimizer, make_tuner, trainable_parameters
from .forward_waits import ForwardWaits
from .gathering import ParameterGathering
from .gradients import clip_shards_, pending_alias
from .graph import output_tensors, reachable_leaves
from .guards import check_arguments, check_unchanged
from .layout import allocate_spaces, attach_spaces
from .rebucketing import Rebucketing
from .reduction import GradientReduction

OptimizerFactory = Callable[[list[dict]], Optimizer]


# The forward hooks run eagerly inside a compiled forward (one graph break each): traced,
# their bookkeeping would put guards on DeAR's state and recompile at every bucket index.
_eager = torch.compiler.disable


class DeAR(GradientReduction, ParameterGathering, Rebucketing, nn.Module):
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
        named, self._group_options = trainable_parameters(module, param_group_fn)
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
        check_optimizer(self.optimizer, self._segments, len(self._group_options))
        attach_spaces(self._slots, self._spaces)
        self._pending_grads = [pending_alias(s.grad_view, s.name) for s in self._slots]
        self._grads_pending = False  # some p.grad holds a PendingGradient
        if self.config.broadcast_init:
            broadcast_from_rank0(self._spaces, [p for _, p in self._frozen], module,
                                 self.process_group)
        self._comm = Communicator(self.process_group, self.config.collective)
        self._tuner = make_tuner(self.config) if self.config.tune_bucket_size else None
        self._steps = 0
        self._last_step_end: float | None = None
        self._no_sync_depth = 0
        self._sync_this_backward = True
        self._sync_buffers_next = True  # as DDP: after a synchronised training forward
        self._backward_id: int | None = None
        self._hooks: list = []
        self._install_hooks()
        self._reset_iteration()

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
