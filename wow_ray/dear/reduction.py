"""DeAR's backward half: gradients land in the buckets, and each complete bucket is averaged
and reduce-scattered while backward goes on (see synchroniser.py for the whole iteration).

A base class of `DeAR`, kept apart so the backward's bookkeeping reads in one place: which
parameters fired, which buckets are complete, which reduce-scatters are in flight, and when
`p.grad` is a partial sum that must not be read (gradients.py).
"""

from __future__ import annotations

from functools import partial

import torch

from .gradients import PendingGradient
from .layout import ParamSlot, shard_grad_chunk


class GradientReduction:
    """The autograd hooks and reduce-scatters of `DeAR` (which holds the state they use)."""

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
