"""What one micro-batch contributes to the loss, for SFT and for DPO.

Both normalise by the whole step's count (target tokens for SFT, pairs for DPO) across every
worker and micro-batch, so gradient accumulation and the number of workers do not change the
gradient: each worker's loss is ``sum / (global_count / world)`` and the synchroniser averages
over workers. The global count comes from the step plan, which every worker can evaluate for
every rank, so it costs no communication.
"""

from __future__ import annotations

import numpy as np
import torch

from wow_ray.training.config import FinetuneConfig
from wow_ray.training.dpo import dpo_loss, sequence_logps
from wow_ray.training.sft_data import IGNORE


def to_device(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device) for k, v in batch.items()}


class SFTObjective:
    """Cross-entropy on assistant tokens of packed rows."""

    extras: tuple[str, ...] = ()  # per-item statistics besides the loss, summed over workers

    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config

    def count(self, data, index: list[int]) -> float:
        """Loss-bearing tokens in these rows (the model shifts labels by one)."""
        return float((data.labels[index, 1:] != IGNORE).sum())

    def tokens(self, data, index: list[int]) -> int:
        """Real (non-padding) tokens processed, for throughput."""
        return int(data.lengths[index].sum())

    def loss_sum(self, model, batch: dict[str, torch.Tensor], reference=None) -> tuple[torch.Tensor, dict]:
        # num_items_in_batch=1 makes transformers' loss a sum over the labelled tokens.
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                    labels=batch["labels"], use_cache=False, num_items_in_batch=1)
        return out.loss, {}


class DPOObjective:
    """DPO over (chosen, rejected) pairs; the reference is the frozen start model."""

    extras: tuple[str, ...] = ("accuracy", "margin")

    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config

    def count(self, data, index: list[int]) -> float:
        return float(len(index))

    def tokens(self, data, index: list[int]) -> int:
        return sum(len(data.chosen[i][0]) + len(data.rejected[i][0]) for i in index)

    def loss_sum(self, model, batch: dict[str, torch.Tensor], reference=None) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            if isinstance(reference, AdaptersOff):  # LoRA: the same model, adapters off
                with reference.model.disable_adapter():
                    ref = sequence_logps(reference.model, batch)
            else:
                ref = sequence_logps(reference, batch)
        out = dpo_loss(sequence_logps(model, batch), ref, self.config.dpo.beta)
        return out["loss"].sum(), {"margin": out["margin"].sum(), "accuracy": out["accuracy"].sum()}


def objective_for(config: FinetuneConfig) -> SFTObjective | DPOObjective:
    return SFTObjective(config) if config.method == "sft" else DPOObjective(config)


def reference_for(config: FinetuneConfig, model: torch.nn.Module):
    """DPO's reference: a frozen copy of the start model (full fine-tuning), or a context that
    disables the adapters (LoRA: no second copy of the weights). None for SFT."""
    if config.method != "dpo":
        return None
    if config.lora is not None:
        return AdaptersOff(model)
    import copy

    frozen = copy.deepcopy(model).eval()
    frozen.requires_grad_(False)
    return frozen


class AdaptersOff:
    """DPO's reference for LoRA: the peft model itself, run under ``disable_adapter()``."""

    def __init__(self, peft_model: torch.nn.Module) -> None:
        self.model = peft_model
