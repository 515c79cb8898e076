"""The per-worker training function that Ray Train's ``TorchTrainer`` runs (SFT and DPO).

One flat loop: resume from Ray Train's latest checkpoint if there is one, then per step set
the learning rate, run the micro-batches (all but the last under ``no_sync``), clip, step,
report. Every ``checkpoint_every`` steps the trainable weights, optimizer state and position go
to the run folder through ``ray.train.report``; the last report carries the result in Hugging
Face form (``hf/``: a peft adapter or a model folder), which the driver registers.

Every worker calls ``ray.train.report`` at the same steps (Ray Train expects it); rank 0 alone
writes the checkpoint's shared files, the JSON Lines log and the progress bar.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from wow_ray.registry import EntryKind, Registry, Storage
from wow_ray.training.config import FinetuneConfig
from wow_ray.training.metrics_log import MetricsLog
from wow_ray.training.objectives import objective_for, reference_for, to_device
from wow_ray.training.sft_data import StepPlan
from wow_ray.training.sync import make_synchroniser

STATE_FILE = "trainer_state.json"
OUTPUT_DIR = "hf"


def lr_at(step: int, config: FinetuneConfig, total: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr_ratio * lr`` at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, total - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.min_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def load_model(base_dir: str, config: FinetuneConfig, device: torch.device,
               init_adapter_dir: str | None = None) -> torch.nn.Module:
    """The base model in fp32 (bf16 comes from autocast), with LoRA adapters when configured:
    fresh ones, or those of a registered adapter to continue from."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(config.seed)  # the same adapter initialisation on every worker
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.config.use_cache = False  # a cache would also switch off packed-sequence masking
    if config.lora is not None and init_adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, init_adapter_dir, is_trainable=True)
    elif config.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = config.lora
        model = get_peft_model(model, LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=lora.target_modules, task_type="CAUSAL_LM"))
    return model.to(device).train()


def _autocast(config: FinetuneConfig, device: torch.device) -> contextlib.AbstractContextManager:
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _all_sum(values: list[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64 if device.type == "cpu" else torch.float32,
                          device=device)
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor.tolist()


class Worker:
    """One worker's state for one run; ``run()`` is the loop."""

    def __init__(self, loop_config: dict) -> None:
        self.config = config = FinetuneConfig.model_validate(loop_config["config"])
        self.run_rel = loop_config["run_rel"]
        self.storage = Storage(loop_config["storage_path"])
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        torch.set_num_threads(config.cpus_per_worker)
        self.device = ray.train.torch.get_device()
        data = ray.get(loop_config["data"])
        self.train_data, self.eval_data = data["train"], data["eval"]
        registry = Registry(self.storage)
        self.base_dir = str(registry.local_dir(registry.get(EntryKind.MODEL, loop_config["base_ref"])))
        init = loop_config.get("init_adapter_ref")
        init_dir = str(registry.local_dir(registry.get(EntryKind.ADAPTER, init))) if init else None
        model = load_model(self.base_dir, config, self.device, init_dir)
        self.reference = reference_for(config, model)
        if config.compile if config.compile is not None else self.device.type == "cuda":
            model.compile()  # in place, before the synchroniser's hooks (tests/dear/test_compile.py)
        self.sync = make_synchroniser(model, config)
        self.objective = objective_for(config)
        self.plan = StepPlan(len(self.train_data), workers=self.world,
                             micro_batch_size=config.micro_batch_size,
                             grad_accum=config.grad_accum, seed=config.seed,
                             epochs=config.epochs, max_steps=config.max_steps)
        self.log = MetricsLog(self.storage, f"{self.run_rel}/metrics.jsonl", enabled=self.rank == 0)

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        config, total = self.config, self.plan.total_steps
        start = self._resume()
        if start is None:
            return  # the last checkpoint is already the final result
        bar = self._progress(start, total)
        metrics: dict = {}
        for step in range(start, total):
            self._maybe_inject_fault(step)
            metrics = self._train_step(step)
            done = step + 1
            if (config.eval_every and done % config.eval_every == 0) or done == total:
                metrics.update(self._evaluate())
            self.log.write(metrics)
            if bar is not None:
                bar.update(1)
            if done == total:
                break
            if done % config.checkpoint_every == 0:
                self._report(metrics, self._checkpoint(done))
            elif done % config.log_every == 0:
                ray.train.report(metrics)
        if bar is not None:
            bar.close()
        self._finish(metrics, total)

    def _train_step(self, step: int) -> dict:
        config, objective, data = self.config, self.objective, self.train_data
        lr = lr_at(step, config, self.plan.total_steps)
        for group in self.sync.optimizer.param_groups:
            group["lr"] = lr
        started = time.perf_counter()
        every_rank = [self.plan.micro_batches(step, r) for r in range(self.world)]
        global_count = sum(objective.count(data, mb) for rank in every_rank for mb in rank)
        scale = self.world / global_count
        mine = every_rank[self.rank]
        loss_sum, extras, tokens = 0.0, {}, 0
        for i, index in enumerate(mine):
            last = i == len(mine) - 1
            batch = to_device(data.batch(index), self.device)
            with (contextlib.nullcontext() if last else self.sync.no_sync()), \
                    _autocast(config, self.device):
                loss, more = objective.loss_sum(self.sync, batch, self.reference)
                (loss * scale).backward()
            loss_sum += loss.item()
            tokens += objective.tokens(data, index)
            for k, v in more.items():
                extras[k] = extras.get(k, 0.0) + v.item()
        grad_norm = self.sync.clip_grad_norm_(config.max_grad_norm or float("inf"))
        self.sync.step()
        keys = objective.extras
        sums = _all_sum([loss_sum, float(tokens), *(extras[k] for k in keys)], self.device)
        seconds = time.perf_counter() - started
        metrics = {"step": step + 1, "epoch": round((step + 1) / self.plan.steps_per_epoch, 4),
                   "loss": sums[0] / global_count, "lr": lr, "grad_norm": float(grad_norm),
                   "tokens": int(sums[1]), "step_seconds": round(seconds, 4),
                   "tokens_per_s": round(sums[1] / seconds, 2)}
        for k, v in zip(keys, sums[2:], strict=True):
            metrics[k] = v / global_count
        return metrics

    def _evaluate(self) -> dict:
        """Loss on the held-out split (every worker takes every world-th item), summed over all."""
        data, objective = self.eval_data, self.objective
        if data is None or len(data) == 0:
            return {}
        items = list(range(len(data)))[: self.config.eval_max_rows][self.rank::self.world]
        size = self.config.micro_batch_size
        loss_sum, count, extras = 0.0, 0.0, {}
        self.sync.module.eval()
        with torch.no_grad():
            for at in range(0, len(items), size):
                index = items[at:at + size]
                with _autocast(self.config, self.device):
                    # The plain module, not DDP's wrapper: its forward broadcasts buffers, a
                    # collective that a worker with no held-out items left would never join.
                    loss, more = objective.loss_sum(
                        self.sync.module, to_device(data.batch(index), self.device), self.reference)
                loss_sum += loss.item()
                count += objective.count(data, index)
                for k, v in more.items():
                    extras[k] = extras.get(k, 0.0) + v.item()
        self.sync.module.train()
        # Every worker sums the same keys, even one with no held-out items (the all-reduce
        # must have one shape on every rank).
        keys = objective.extras
        sums = _all_sum([loss_sum, count, *(extras.get(k, 0.0) for k in keys)], self.device)
        out = {"eval_loss": sums[0] / max(sums[1], 1.0)}
        out.update({f"eval_{k}": v / max(sums[1], 1.0) for k, v in zip(keys, sums[2:], strict=True)})
        return out

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self, done: int, final: bool = False) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="wow-ray-ckpt-"))
        if not final:
            self.sync.save_checkpoint(folder)
        if self.rank == 0:
            state = {"step": done, "final": final, "world_size": self.world,
                     "synchroniser": self.config.synchroniser}
            (folder / STATE_FILE).write_text(json.dumps(state))
        return folder

    def _report(self, metrics: dict, folder: Path) -> None:
        """Report on every worker; those with files add them to the one checkpoint folder."""
        try:
            checkpoint = (ray.train.Checkpoint.from_directory(str(folder))
                          if any(folder.iterdir()) else None)
            ray.train.report(metrics, checkpoint=checkpoint)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _resume(self) -> int | None:
        """Steps already done (0 on a fresh start); None if the run already finished."""
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            self.log.start(0)
            return 0
        with checkpoint.as_directory() as folder:
            state = json.loads((Path(folder) / STATE_FILE).read_text())
            if state["final"]:
                return None
            if state["world_size"] != self.world and self.config.synchroniser == "dear":
                raise RuntimeError(f"checkpoint was written by {state['world_size']} DeAR "
                                   f"workers; this run has {self.world}")
            self.sync.load_checkpoint(Path(folder))
        self.log.start(state["step"])
        return state["step"]

    def _finish(self, metrics: dict, total: int) -> None:
        """Unwrap the model and report the result, in Hugging Face form, as the last checkpoint."""
        self.sync.close()
        folder = self._checkpoint(total, final=True)
        if self.rank == 0:
            save_output(self.sync.module, self.config, self.base_dir, folder / OUTPUT_DIR)
            (folder / "metrics.json").write_text(json.dumps(metrics))
        self._report(metrics, folder)

    # ------------------------------------------------------------------ extras

    def _progress(self, start: int, total: int):
        if self.rank != 0 or not self.config.progress:
            return None
        from ray.experimental.tqdm_ray import tqdm

        bar = tqdm(total=total, desc=f"{self.config.method} {self.config.output_name}")
        bar.update(start)
        return bar

    def _maybe_inject_fault(self, step: int) -> None:
        fault = self.config.fault_injection
        if fault is None or self.rank != fault.rank or step + 1 != fault.at_step:
            return
        marker = f"{self.run_rel}/fault_injected"
        if self.storage.exists(marker):
            return  # it already happened once; the restarted worker carries on
        self.storage.write_text(marker, json.dumps({"rank": self.rank, "step": step + 1}))
        os.kill(os.getpid(), signal.SIGKILL)


def save_output(module: torch.nn.Module, config: FinetuneConfig, base_dir: str, out: Path) -> None:
    """The trained result as vLLM and transformers load it: a peft adapter folder, or a full
    model folder (merged adapters, or full fine-tuning) with the base model's tokenizer."""
    from transformers import AutoTokenizer

    module = module.cpu()
    if config.lora is not None and not config.lora.merge:
        module.save_pretrained(out)
        return
    if config.lora is not None:
        module = module.merge_and_unload()
    module.config.use_cache = True  # for serving
    module.save_pretrained(out)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)


def train_loop(loop_config: dict) -> None:
    """Ray Train's ``train_loop_per_worker``."""
    Worker(loop_config).run()
