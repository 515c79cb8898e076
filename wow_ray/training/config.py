"""The fine-tuning job's configuration: one validated tree, read from YAML.

Every option lives here (never in new command-line flags), each with a description that
``python -m train_jobs.finetune --help`` prints. A bad value fails at start naming the field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wow_ray.dear.config import DeARConfig
from wow_ray.errors import ConfigError
from wow_ray.registry.records import NAME_PATTERN


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraOptions(_Options):
    """Low-rank adapters (peft) instead of full fine-tuning."""

    r: int = Field(8, ge=1, le=256, description="Adapter rank (the served engine's max_lora_rank bounds it).")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's input.")
    target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Module names that get adapters (vLLM serves adapters on these).",
    )
    merge: bool = Field(
        False,
        description="Register merged full weights (a model) instead of the adapter. An adapter "
        "reaches the running service without a restart; merged weights need their own app.",
    )


class DPOOptions(_Options):
    """Direct preference optimisation (Rafailov et al. 2023)."""

    beta: float = Field(0.1, gt=0, description="Strength of the KL anchor to the reference model.")
    max_prompt_tokens: int = Field(
        768, ge=16, description="Prompts longer than this keep their last tokens."
    )


class FaultInjection(_Options):
    """For the resume test only: one worker kills its own process once, mid-run."""

    rank: int = Field(1, ge=0, description="Which worker dies.")
    at_step: int = Field(ge=1, description="It dies just before this optimizer step.")


class DatasetPart(_Options):
    """One registered dataset in a job's mix, and how much of it goes in."""

    dataset: str = Field(description="Registered dataset version: name, name:vN or name@alias.")
    weight: float = Field(
        1.0, gt=0, description="Each sample is used this many times per epoch: 2 repeats it, "
        "0.5 keeps a seeded half (how much of cold start or earlier data a new turn keeps).",
    )


class FinetuneConfig(_Options):
    """One fine-tuning job: what to train, on what, how, and where the result goes."""

    method: Literal["sft", "dpo"] = Field(
        "sft",
        description="sft: supervised, loss on assistant turns only (dataset kind 'sft'); "
        "dpo: preference optimisation over (prompt, chosen, rejected) (kind 'preference').",
    )
    base_model: str = Field(description="Registered model to start from: name or name:vN.")
    dataset: str | None = Field(None, description="Registered dataset version: name or name:vN "
                                "(or use datasets for a weighted mix).")
    datasets: list[DatasetPart] = Field(
        default_factory=list, description="Several registered datasets with weights (cold "
        "start, failures, earlier turns' data, so that a new adapter does not forget); "
        "trained on together with dataset, if that is set too.",
    )
    agents: list[str] | None = Field(
        None, description="Train only on samples of these agents (meta.agent); all by default."
    )
    init_adapter: str | None = Field(
        None, description="LoRA: start from this registered adapter (name:vN or name@alias) "
        "over the same base model instead of fresh adapters.",
    )
    output_name: str = Field(
        pattern=NAME_PATTERN,
        description="Registry name of the result: an adapter (LoRA) or a model (full, merged).",
    )
    storage_path: str | None = Field(
        None, description="Storage root (registry, runs). Default: the WOW-Ray settings' one."
    )
    run_name: str | None = Field(
        None, description="Ray Train run folder under <storage>/runs. Default: output name + time."
    )
    lora: LoraOptions | None = Field(None, description="Set for LoRA; leave out for full fine-tuning.")
    synchroniser: Literal["dear", "ddp"] = Field(
        "dear", description="Gradient synchronisation: DeAR (sharded, overlapped) or PyTorch DDP."
    )
    dear: DeARConfig = Field(
        default_factory=DeARConfig,
        description="DeAR's settings (wow_ray.dear.DeARConfig, embedded whole); used when "
        "synchroniser is 'dear'.",
    )
    dpo: DPOOptions = Field(default_factory=DPOOptions)

    workers: int = Field(2, ge=1, description="Ray Train workers (data-parallel ranks).")
    use_gpu: bool = Field(False, description="One GPU per worker (NCCL); else CPU workers (gloo).")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs each worker reserves and torch threads.")
    compile: bool | None = Field(
        None,
        description="torch.compile the model in place (module.compile()) before DeAR or DDP "
        "wraps it; DeAR's forward still waits for each all-gather. None: on when the workers "
        "have GPUs (use_gpu), off on CPU, where compiling takes minutes and gains little.",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on GPU, fp32 on CPU (CPU bf16 is slower here)."
    )

    seq_len: int = Field(1024, ge=16, description="Tokens per packed row; longer samples are dropped.")
    packing: bool = Field(
        True, description="SFT: pack several samples per row (attention kept within each sample)."
    )
    loss_on: Literal["last", "all"] = Field(
        "last",
        description="Which assistant turns are targets: the last (the dataset's target; earlier "
        "assistant turns may be the agent's own, possibly wrong, replies) or all of them.",
    )
    micro_batch_size: int = Field(1, ge=1, description="Rows (SFT) or pairs (DPO) per forward.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training split.")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs.")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate (AdamW).")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine floor, as a share of lr.")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps before the cosine decay.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not on norms, biases).")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Global gradient-norm clip.")
    seed: int = Field(0, description="Seeds data order, packing and adapter initialisation.")

    eval_every: int = Field(0, ge=0, description="Evaluate every N steps (0: only at the end).")
    eval_max_rows: int | None = Field(
        None, ge=1, description="Evaluate on at most this many held-out rows (or pairs)."
    )
    log_every: int = Field(1, ge=1, description="Report metrics every N steps.")
    checkpoint_every: int = Field(50, ge=1, description="Checkpoint every N steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept in the run folder.")
    max_failures: int = Field(
        2, ge=-1, description="Worker-group restarts (from the last checkpoint); -1: no limit."
    )
    progress: bool = Field(True, description="Show a progress bar (rank 0, through Ray).")
    fault_injection: FaultInjection | None = Field(None, description="Tests only.")

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if not self.dataset and not self.datasets:
            raise ValueError("set dataset or datasets: what to train on")
        if self.init_adapter and (self.lora is None or self.lora.merge):
            raise ValueError("init_adapter needs lora (not merged): it continues an adapter")
        if self.fault_injection and self.fault_injection.rank >= self.workers:
            raise ValueError(f"fault_injection.rank must be < workers ({self.workers})")
        return self

    def parts(self) -> list[DatasetPart]:
        """Every dataset of the job with its weight (``dataset`` first, weight 1)."""
        return ([DatasetPart(dataset=self.dataset)] if self.dataset else []) + list(self.datasets)

    @property
    def rows_per_step(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.workers


def load_finetune_config(path: str | Path, **overrides: Any) -> FinetuneConfig:
    """Read a job YAML (top-level keys are FinetuneConfig fields); ConfigError names the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"job config {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"job config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"job config {path} must hold a mapping")
    data.update(overrides)
    try:
        return FinetuneConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"invalid job config {path}:"]
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "<root>"
            lines.append(f"  {field}: {err['msg']}; got {err.get('input')!r}")
        raise ConfigError("\n".join(lines)) from None


def describe_fields(model: type = FinetuneConfig, prefix: str = "") -> list[str]:
    """One line per option (nested ones dotted), for ``--help``; nested options are pydantic
    models or dataclasses whose fields carry a "description" in their metadata."""
    if dataclasses.is_dataclass(model):
        return [f"  {prefix}{f.name} (default {f.default!r}): {f.metadata.get('description')}"
                for f in dataclasses.fields(model)]
    lines = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = [a for a in getattr(annotation, "__args__", (annotation,))
                  if isinstance(a, type) and (issubclass(a, BaseModel) or dataclasses.is_dataclass(a))]
        default = "required" if field.is_required() else f"default {field.get_default(call_default_factory=False)!r}"
        if nested:
            lines.append(f"  {prefix}{name}: {field.description or nested[0].__doc__}")
            lines += describe_fields(nested[0], f"{prefix}{name}.")
        else:
            lines.append(f"  {prefix}{name} ({default}): {field.description}")
    return lines
