"""Which parameters a forward output depends on (DeAR's find_unused_parameters).

The same traversal DDP does: walk the autograd graph from the output's grad_fn to the
AccumulateGrad nodes, whose `variable` is a leaf that will receive a gradient in backward.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def reachable_leaves(output: object) -> set[int]:
    """ids of the leaf tensors whose gradient a backward from `output` would compute."""
    tensors = list(output_tensors(output))
    reached = {id(t) for t in tensors if t.grad_fn is None and t.requires_grad}
    stack = [t.grad_fn for t in tensors if t.grad_fn is not None]
    seen: set = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad
        if variable is not None:
            reached.add(id(variable))
        stack.extend(child for child, _ in node.next_functions)
    return reached


def output_tensors(value: object) -> Iterator[torch.Tensor]:
    """Tensors inside a forward output (tensor, sequence, mapping, dataclass-like)."""
    if torch.is_tensor(value):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from output_tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from output_tensors(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from output_tensors(getattr(value, name))
