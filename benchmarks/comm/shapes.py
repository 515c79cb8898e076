"""ResNet-50 and BERT-base as performance-model workloads: tensor shapes from the published
architectures, per-tensor compute time from FLOPs scaled to a measured single-GPU throughput.

Assumption (documented in benchmarks/README.md): one iteration of one GPU takes
batch / samples_per_s seconds, the survey's single-GPU rates (RTX 2080 Ti: ResNet-50 253.1,
BERT-base 212.8 samples/s); a third of it is forward and two thirds backward (backward computes
the gradients of both inputs and weights), spread over layers in proportion to their forward
FLOPs. Normalisation, activation and embedding lookups get no time (they are memory-bound and
small next to the matrix products); the optimizer step is folded into the compute time.
"""

from __future__ import annotations

from .perfmodel import Tensor, Workload

SURVEY_SINGLE_GPU = {"resnet50": 253.1, "bert_base": 212.8}  # samples/s, arXiv 2005.13247
DEFAULT_BATCH = {"resnet50": 64, "bert_base": 64}


def _layers_resnet50() -> list[tuple[str, list[int], float]]:
    """(name, parameter element counts, forward FLOPs per sample) in forward order."""
    out: list[tuple[str, list[int], float]] = []

    def conv(name: str, cin: int, cout: int, k: int, hw: int) -> None:
        out.append((name, [cin * cout * k * k], 2.0 * cin * cout * k * k * hw * hw))
        out.append((name + ".bn", [cout, cout], 0.0))

    conv("conv1", 3, 64, 7, 112)
    cin, hw = 64, 56
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        for b in range(blocks):
            stride = 2 if stage and b == 0 else 1
            out_hw = hw // stride
            name = f"layer{stage + 1}.{b}"
            conv(f"{name}.conv1", cin, width, 1, hw)
            conv(f"{name}.conv2", width, width, 3, out_hw)  # stride on the 3x3 (v1.5)
            conv(f"{name}.conv3", width, 4 * width, 1, out_hw)
            if b == 0:
                conv(f"{name}.downsample", cin, 4 * width, 1, out_hw)
            cin, hw = 4 * width, out_hw
    out.append(("fc", [2048 * 1000, 1000], 2.0 * 2048 * 1000))
    return out


def _layers_bert_base(seq: int = 128) -> list[tuple[str, list[int], float]]:
    d, ff, vocab = 768, 3072, 30522
    out: list[tuple[str, list[int], float]] = [
        ("embeddings", [vocab * d, 512 * d, 2 * d, d, d], 0.0)]

    def linear(name: str, i: int, o: int, extra: float = 0.0) -> None:
        out.append((name, [i * o, o], seq * 2.0 * i * o + extra))

    for layer in range(12):
        n = f"encoder.{layer}"
        for part in ("query", "key", "value"):
            linear(f"{n}.{part}", d, d)
        # the attention products QK^T and AV (2 * seq^2 * d multiply-adds) join the output
        linear(f"{n}.attention.output", d, d, extra=4.0 * seq * seq * d)
        out.append((f"{n}.attention.norm", [d, d], 0.0))
        linear(f"{n}.intermediate", d, ff)
        linear(f"{n}.output", ff, d)
        out.append((f"{n}.output.norm", [d, d], 0.0))
    linear("pooler", d, d)
    return out


def survey_workload(model: str, batch: int | None = None,
                    samples_per_s: float | None = None) -> Workload:
    """A Workload for 'resnet50' or 'bert_base' (fp32 gradients) on one survey GPU."""
    layers = {"resnet50": _layers_resnet50, "bert_base": _layers_bert_base}[model]()
    batch = batch or DEFAULT_BATCH[model]
    rate = samples_per_s or SURVEY_SINGLE_GPU[model]
    iteration = batch / rate
    flops = sum(f for _, _, f in layers)
    tensors = []
    for name, counts, f in layers:
        share = iteration * f / flops
        for k, count in enumerate(counts):
            # backward meets a layer's tensors in reverse: the first one it meets carries the
            # layer's backward time, so all of them are ready once the layer is done
            last = k == len(counts) - 1
            tensors.append(Tensor(name=f"{name}.{k}", bytes=4 * count,
                                  fwd_s=share / 3 if k == 0 else 0.0,
                                  bwd_s=2 * share / 3 if last else 0.0))
    return Workload(name=model, tensors=tensors, batch=batch, update_s=0.0,
                    fsdp_units=_units(tensors))


def _units(tensors: list[Tensor]) -> list[list[int]]:
    """FSDP units: one per residual block / encoder layer, the rest in the root (first)."""
    units: dict[str, list[int]] = {"": []}
    for i, t in enumerate(tensors):
        parts = t.name.split(".")
        key = ".".join(parts[:2]) if parts[0].startswith(("layer", "encoder")) else ""
        units.setdefault(key, []).append(i)
    return list(units.values())


def parameter_count(model: str) -> int:
    return sum(t.bytes for t in survey_workload(model).tensors) // 4
