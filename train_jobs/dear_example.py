"""A small Ray Train job with DeAR: a tiny next-token model on synthetic data.

    python -m train_jobs.dear_example --workers 2 --steps 20 --checkpoint-at 10
    python -m train_jobs.dear_example --workers 2 --steps 20 --resume-from <checkpoint path>

It shows the whole contract (wrap, no_sync accumulation, clipping, step, checkpoint through
`ray.train.report`, resume) and is what the Ray Train test runs. Workers use gloo on CPU and
NCCL on GPU (`--gpu`), as Ray Train initialises them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import ray.train
import torch
import torch.nn.functional as F
from torch import nn

from wow_ray.dear import DeARConfig
from wow_ray.training.dear_train import prepare_dear, report_dear, resume_dear

VOCAB = 64


class TinyLM(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, VOCAB, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        return self.head(self.norm(h + self.mlp(h)))


def _batch(step: int, micro: int, rank: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(10_000 * step + 100 * rank + micro)
    tokens = torch.randint(0, VOCAB, (8, 16), generator=g)
    return tokens.to(device), torch.roll(tokens, -1, dims=1).to(device)


def train_loop(config: dict) -> None:
    """The per-worker training function. Config: steps, checkpoint_at (report a checkpoint
    after that step), resume_from (a checkpoint folder, when Ray Train has none to restore),
    lr, bucket_size_mb, accumulation, checkpoint_every (report a checkpoint every that many
    steps); for tests, final_state (rank 0 saves the final model there; "{start}" becomes the
    step it started from), fail_once_marker, step_seconds (a pause after each step, so a fault
    test can strike mid-training), hold_file (while that file exists and holds a step number
    no greater than the step done, wait after it: a fault test holds training there until its
    other parties are under way) and progress_file (one JSON line per worker and step: rank,
    node address, the step it started from, the step done)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rank = ray.train.get_context().get_world_rank()
    dear = prepare_dear(
        TinyLM(),
        lambda groups: torch.optim.AdamW(groups, lr=config.get("lr", 3e-3), weight_decay=0.01),
        DeARConfig(bucket_size_mb=config.get("bucket_size_mb", 0.01)),
        param_group_fn=lambda name, p: {"weight_decay": 0.0} if p.dim() < 2 else {},
    )
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and config.get("resume_from"):
        checkpoint = ray.train.Checkpoint(config["resume_from"])
    start = resume_dear(dear, checkpoint)
    device = dear.device
    accumulation = config.get("accumulation", 2)
    loss = torch.zeros(())
    for step in range(start, config["steps"]):
        for micro in range(accumulation):
            tokens, targets = _batch(step, micro, rank, device)
            with dear.no_sync() if micro < accumulation - 1 else contextlib.nullcontext():
                logits = dear(tokens)
                loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten()) / accumulation
                loss.backward()
        dear.clip_grad_norm_(1.0)
        dear.step()
        every = config.get("checkpoint_every")
        if step + 1 == config.get("checkpoint_at") or (every and (step + 1) % every == 0):
            report_dear(dear, {"step": step + 1, "loss": loss.item(),
                               "bucket_size_mb": dear.bucket_size_mb})
        if config.get("progress_file"):
            _log_progress(config["progress_file"], rank, start, step + 1)
        time.sleep(config.get("step_seconds", 0.0))
        if config.get("hold_file"):
            _hold(Path(config["hold_file"]), step + 1)
    dear.flush()
    if rank == 0 and config.get("final_state"):
        torch.save({k: v.cpu() for k, v in dear.module.state_dict().items()},
                   config["final_state"].format(start=start))
    dear.close()
    marker = config.get("fail_once_marker")
    if marker and not Path(marker).exists():
        # For the fault-tolerance test: the first attempt fails after finishing, so Ray Train
        # restarts the workers, which resume from the last reported checkpoint.
        torch.distributed.barrier()  # every rank has seen the marker missing
        if rank == 0:
            Path(marker).touch()
        raise RuntimeError("injected failure (fail_once_marker)")


def _hold(path: Path, step: int, limit_s: float = 600.0) -> None:
    """Wait while `path` exists and names a step no later than `step` (at most `limit_s`)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            held_at = int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return
        if held_at > step:
            return
        time.sleep(0.2)


def _log_progress(path: str, rank: int, start: int, step: int) -> None:
    line = {"rank": rank, "node": ray.util.get_node_ip_address(), "start": start, "step": step}
    with open(path, "a") as out:  # one short line per write: appends do not interleave
        out.write(json.dumps(line) + "\n")


def main() -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--checkpoint-at", type=int)
    parser.add_argument("--resume-from")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--storage", default=str(Path.cwd() / "ray_results"))
    args = parser.parse_args()
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"steps": args.steps, "checkpoint_at": args.checkpoint_at,
                           "resume_from": args.resume_from},
        scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=args.gpu),
        run_config=RunConfig(storage_path=args.storage),
    )
    result = trainer.fit()
    print("checkpoint:", result.checkpoint.path if result.checkpoint else None)


if __name__ == "__main__":
    main()
