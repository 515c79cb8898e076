"""Where DeAR cuts its buckets, and when it cuts them again: the first training forward lays the
parameters out in the order of use (as DDP rebuilds its buckets), and the online tuner may
pick another bucket size between trials (tuner.py); the optimizer state follows its elements.

A base class of `DeAR`; layout.py computes the cuts, this applies them to a live synchroniser.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.distributed as dist

from . import optimizer_state as ostate
from .collectives import Handle
from .gradients import pending_alias
from .layout import attach_spaces, make_buckets, make_segments, relayout_spaces

logger = logging.getLogger("wow_ray.dear")


class Rebucketing:
    """Bucket layout and bucket-size tuning of `DeAR` (which holds the slots and spaces)."""

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
