"""DeAR on one GPU (issue 17): equivalence with plain AdamW and DDP, tokens/s and MFU, compiled
and not. Pure PyTorch + transformers + peft: no Ray, no vLLM, no download.

One rank (NCCL on a GPU; gloo on a CPU) with the SmolLM2-135M shape (random weights) at batch
16 x 2048 in bf16 autocast, AdamW:

1. equivalence: the same initial weights and batches trained `--steps` steps by plain AdamW,
   by DDP and by DeAR (native collectives), full fine-tuning and LoRA (peft); the largest
   parameter difference of DDP and of DeAR from plain (DeAR should be as close as DDP);
2. speed: tokens/s of plain AdamW, DDP and DeAR, with `module.compile()` (in place, before the
   wrapper, as the fine-tuning job does) and without, over `--timed` steps after `--warmup`;
   model FLOPs utilisation = (6 N + 12 L d T) FLOPs per token x tokens/s / peak, peak being
   `--peak-tflops` or a measured bf16 matmul (reported either way).

On a machine without a GPU it runs a tiny shape in fp32 (the CPU test runs it end to end):

    python benchmarks/bench_gpu_dear.py --out /tmp/gpu_dear.json          # on the GPU machine
    python benchmarks/bench_gpu_dear.py --tiny     # anywhere, quick (aot_eager on a CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wow_ray.dear import DeAR, DeARConfig  # noqa: E402

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=True)
TINY = dict(SMOLLM2_135M, vocab_size=512, hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def build_model(shape: dict, lora: bool, device: torch.device) -> torch.nn.Module:
    """The shape with seed-0 weights (every call the same), LoRA adapters if asked."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**shape, use_cache=False))
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, task_type="CAUSAL_LM",
                                                 target_modules=LORA_TARGETS))
    return model.to(device).train()


def batches(shape: dict, batch: int, seq: int, count: int, device: torch.device) -> list:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, shape["vocab_size"], (batch, seq), generator=g).to(device)
            for _ in range(count)]


def _adamw(params) -> torch.optim.Optimizer:  # noqa: ANN001
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)


class Plain:
    """No synchroniser: the model and its optimizer (the reference)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.module, self.model = model, model
        self.optimizer = _adamw([p for p in model.parameters() if p.requires_grad])

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def close(self) -> None:
        pass


class DDPSync(Plain):
    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        from torch.nn.parallel import DistributedDataParallel as DDP

        super().__init__(model)
        ids = [device.index] if device.type == "cuda" else None
        self.module = DDP(model, device_ids=ids, gradient_as_bucket_view=True)


class DeARSync(Plain):
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.module = self.dear = DeAR(model, _adamw, DeARConfig(collective="native"))

    def step(self) -> None:
        self.dear.step()

    def close(self) -> None:
        self.dear.close()


def make(kind: str, model: torch.nn.Module, device: torch.device) -> Plain:
    return {"plain": Plain, "ddp": lambda m: DDPSync(m, device), "dear": DeARSync}[kind](model)


def train_step(sync: Plain, tokens: torch.Tensor, bf16: bool) -> None:
    with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = sync.module(input_ids=tokens, labels=tokens).loss
    loss.backward()
    sync.step()


def equivalence(args: argparse.Namespace, shape: dict, device: torch.device,
                bf16: bool) -> dict:
    """Largest parameter difference from plain AdamW after `steps` steps, per synchroniser."""
    data = batches(shape, args.batch, args.seq, args.steps, device)
    out = {}
    for lora in (False, True):
        final = {}
        for kind in ("plain", "ddp", "dear"):
            sync = make(kind, build_model(shape, lora, device), device)
            for tokens in data:
                train_step(sync, tokens, bf16)
            sync.close()
            final[kind] = {n: p.detach().float().cpu().clone()
                           for n, p in sync.model.named_parameters() if p.requires_grad}
            del sync
        start = {n: p.detach().float().cpu() for n, p in
                 build_model(shape, lora, device).named_parameters() if p.requires_grad}
        moved = max((final["plain"][n] - start[n]).abs().max().item() for n in start)
        out["lora" if lora else "full"] = {
            "moved": moved,
            **{f"{kind}_vs_plain": max((final[kind][n] - final["plain"][n]).abs().max().item()
                                       for n in start) for kind in ("ddp", "dear")}}
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(args: argparse.Namespace, shape: dict, device: torch.device, bf16: bool,
               compiled: bool, kind: str) -> float:
    """Tokens/s of full fine-tuning, step end to step end over `timed` steps."""
    torch._dynamo.reset()
    model = build_model(shape, False, device)
    if compiled:
        model.compile(backend=args.compile_backend)
    sync = make(kind, model, device)
    data = batches(shape, args.batch, args.seq, 2, device)
    for i in range(args.warmup):
        train_step(sync, data[i % 2], bf16)
    _sync(device)
    start = time.perf_counter()
    for i in range(args.timed):
        train_step(sync, data[i % 2], bf16)
    _sync(device)
    seconds = time.perf_counter() - start
    sync.close()
    return args.batch * args.seq * args.timed / seconds


def flops_per_token(shape: dict, seq: int) -> float:
    """6 N (forward and backward through every weight) + 12 L d T (attention scores and
    values), as PaLM's appendix counts model FLOPs."""
    model = build_model(shape, False, torch.device("cpu"))
    n = sum(p.numel() for p in model.parameters())
    return 6 * n + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * seq


def measured_peak_tflops(device: torch.device) -> float:
    """A large matmul's rate (bf16 on a GPU, fp32 on a CPU): what the device reaches."""
    size, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (512, torch.float32)
    a = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ a
    _sync(device)
    reps, start = 20, time.perf_counter()
    for _ in range(reps):
        a @ a
    _sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny shape (default on a CPU)")
    parser.add_argument("--batch", type=int, help="rows per step (16; tiny 2)")
    parser.add_argument("--seq", type=int, help="tokens per row (2048; tiny 32)")
    parser.add_argument("--steps", type=int, default=8, help="equivalence: steps trained")
    parser.add_argument("--warmup", type=int, help="speed: untimed steps (5; tiny 1)")
    parser.add_argument("--timed", type=int, help="speed: timed steps (20; tiny 2)")
    parser.add_argument("--compile-backend",
                        help="torch.compile's backend (inductor; aot_eager on a CPU, where "
                        "inductor's C++ compile takes minutes)")
    parser.add_argument("--peak-tflops", type=float, help="MFU's denominator; default measured")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    tiny = args.tiny or not gpu
    # compiled DeAR recompiles while its state settles (first step, first all-gathers)
    for name, big, small in (("batch", 16, 2), ("seq", 2048, 32), ("warmup", 5, 3),
                             ("timed", 20, 2)):
        if getattr(args, name) is None:
            setattr(args, name, small if tiny else big)
    shape = TINY if tiny else SMOLLM2_135M
    args.compile_backend = args.compile_backend or ("inductor" if gpu else "aot_eager")
    device = torch.device("cuda", 0) if gpu else torch.device("cpu")
    if gpu:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    bf16 = gpu  # the GPU facts of issue 17 are bf16 autocast; CPU bf16 is slow: fp32 there
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("nccl" if gpu else "gloo", rank=0, world_size=1,
                            timeout=timedelta(minutes=10))
    try:
        result = {"device": torch.cuda.get_device_name(device) if gpu else "cpu",
                  "torch": torch.__version__, "shape": "tiny" if tiny else "SmolLM2-135M",
                  "batch": args.batch, "seq": args.seq, "bf16": bf16,
                  "compile_backend": args.compile_backend,
                  "equivalence": equivalence(args, shape, device, bf16)}
        print(json.dumps(result["equivalence"], indent=1), flush=True)
        peak = args.peak_tflops or measured_peak_tflops(device)
        per_token = flops_per_token(shape, args.seq)
        speed = {}
        for compiled in (False, True):
            for kind in ("plain", "ddp", "dear"):
                rate = throughput(args, shape, device, bf16, compiled, kind)
                key = f"{kind}{' compiled' if compiled else ''}"
                speed[key] = {"tokens_per_s": rate, "mfu": rate * per_token / (peak * 1e12)}
                print(f"{key}: {rate:,.0f} tokens/s, MFU {100 * speed[key]['mfu']:.1f}%",
                      flush=True)
        result |= {"peak_tflops": peak, "peak_measured": args.peak_tflops is None,
                   "flops_per_token": per_token, "speed": speed}
    finally:
        dist.destroy_process_group()
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


def markdown(result: dict) -> str:
    eq = result["equivalence"]
    lines = [f"{result['device']}, torch {result['torch']}, {result['shape']} at "
             f"{result['batch']} x {result['seq']}, {'bf16 autocast' if result['bf16'] else 'fp32'}"
             f", AdamW, one rank. Largest parameter difference from plain AdamW after the "
             f"equivalence steps (how far plain moved the weights in brackets):", "",
             "| fine-tuning | DDP | DeAR | moved |", "| --- | ---: | ---: | ---: |"]
    for name, row in eq.items():
        lines.append(f"| {name} | {row['ddp_vs_plain']:.2e} | {row['dear_vs_plain']:.2e} "
                     f"| {row['moved']:.2e} |")
    lines += ["", f"Tokens/s and MFU (peak {result['peak_tflops']:.3g} TFLOP/s, "
              f"{'measured' if result['peak_measured'] else 'given'}):", "",
              "| run | tokens/s | MFU | vs plain |", "| --- | ---: | ---: | ---: |"]
    for key, row in result["speed"].items():
        plain = result["speed"]["plain" + (" compiled" if "compiled" in key else "")]
        lines.append(f"| {key} | {row['tokens_per_s']:,.0f} | {100 * row['mfu']:.1f}% "
                     f"| {row['tokens_per_s'] / plain['tokens_per_s']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
