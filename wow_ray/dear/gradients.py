"""DeAR's gradients: what `p.grad` holds while they are reduced, and their global norm.

`p.grad` while DeAR reduces it is a tensor that refuses to be read.

Between a synchronising backward and step(), a parameter's gradient buffer is being
reduce-scattered (then cleared): no rank holds the averaged gradient of a whole parameter,
only its shard of every bucket. Code written for DDP that reads `p.grad` there, above all
`torch.nn.utils.clip_grad_norm_(model.parameters(), ...)`, would compute on partial sums and
differ per rank, silently. So `p.grad` is swapped for this alias of the same buffer, whose
every operation except metadata (shape, dtype, device...) raises an error that says what to
use instead. DeAR's own code never reads it; the real view is back at the next forward,
after step(), zero_grad() and close().
"""

from __future__ import annotations

import torch
import torch.distributed as dist

# Reading these tells nothing about the values, and torch's own checks read them.
_METADATA = {"shape", "dtype", "device", "layout", "ndim", "is_sparse", "is_cuda", "is_meta",
             "requires_grad", "is_leaf", "grad_fn", "names", "size", "dim", "numel", "stride",
             "is_floating_point", "is_complex", "element_size", "is_contiguous",
             "__len__", "__hash__"}


class PendingGradient(torch.Tensor):
    """An alias of a gradient buffer that DeAR is reducing; see the module docstring."""

    parameter_name: str = "?"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        name = getattr(func, "__name__", "")
        if name == "__get__":
            name = getattr(getattr(func, "__self__", None), "__name__", "")
        if name in _METADATA:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {}))
        flat = [x for a in args for x in (a if isinstance(a, list | tuple) else (a,))]
        parameter = next((a.parameter_name for a in flat if isinstance(a, PendingGradient)),
                         cls.parameter_name)
        raise RuntimeError(
            f"DeAR: the gradient of {parameter!r} is being reduce-scattered between backward "
            "and step(): no rank holds it whole, so reading p.grad (or "
            "torch.nn.utils.clip_grad_norm_(model.parameters(), ...)) would see partial sums. "
            "Clip with model.clip_grad_norm_(max_norm) (the global norm, one scalar "
            "all-reduce); read local gradients inside model.no_sync(), before the backward "
            "that synchronises")


def pending_alias(grad_view: torch.Tensor, name: str) -> PendingGradient:
    """A PendingGradient sharing `grad_view`'s memory (nothing is copied)."""
    alias = torch.Tensor._make_subclass(PendingGradient, grad_view)
    alias.parameter_name = name
    return alias


def clip_shards_(shards: list[torch.Tensor], max_norm: float, norm_type: float,
                 group: dist.ProcessGroup) -> torch.Tensor:
    """Clip gradients sharded over `group` by their global norm, in place, as
    torch.nn.utils.clip_grad_norm_ on the whole gradient would; one scalar all-reduce."""
    norm_type = float(norm_type)
    if norm_type == float("inf"):
        total = torch.stack([g.abs().max() for g in shards]).max().float()
        dist.all_reduce(total, op=dist.ReduceOp.MAX, group=group)
    else:
        local = sum(torch.linalg.vector_norm(g, norm_type).float() ** norm_type for g in shards)
        dist.all_reduce(local, group=group)
        total = local ** (1.0 / norm_type)
    coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in shards:
        g.mul_(coefficient.to(g.dtype))
    return total
