"""What DeAR refuses, and when: wrong arguments before it touches the model; at each forward,
what its layout (fixed at construction) cannot follow."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim import Optimizer

from .config import DeARConfig
from .layout import ParamSlot

_FP16_REFUSED = (
    "DeAR does not train in float16: it needs loss scaling (GradScaler), whose overflow check "
    "would see only this rank's shard of the gradients, so ranks could disagree on skipping a "
    "step. Use bfloat16 (autocast dtype=torch.bfloat16) or float32 parameters")


def check_arguments(module: object, optimizer_factory: object, config: object) -> None:
    """Refuse wrong kinds of argument before DeAR changes anything in the model."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if isinstance(optimizer_factory, Optimizer) or not callable(optimizer_factory):
        raise TypeError(
            "optimizer_factory must be a function from parameter groups to an optimizer, "
            "such as `lambda groups: torch.optim.AdamW(groups, lr=1e-4)`, got "
            f"{type(optimizer_factory).__name__}: DeAR builds the optimizer over this rank's "
            "shard itself")
    if not isinstance(config, DeARConfig):
        raise TypeError(f"config must be a DeARConfig, got {type(config).__name__}")
    if any(p.dtype == torch.float16 for p in module.parameters() if p.requires_grad):
        raise TypeError(_FP16_REFUSED)


def check_unchanged(slots: list[ParamSlot], frozen: list[tuple[str, nn.Parameter]],
                    device: torch.device) -> None:
    """At each forward: refuse what the layout, fixed at construction, cannot follow."""
    changed = [s.name for s in slots if not s.param.requires_grad] + [
        name for name, p in frozen if p.requires_grad]
    if changed:
        raise RuntimeError(
            f"requires_grad of {changed} changed after the model was wrapped in DeAR, whose "
            "buffers and optimizer shards hold the parameters that were trainable then: "
            "set requires_grad before wrapping (or close() and wrap again)")
    if torch.is_grad_enabled() and torch.is_autocast_enabled(device.type) and \
            torch.get_autocast_dtype(device.type) == torch.float16:
        raise RuntimeError(_FP16_REFUSED)
