"""The two benchmark models, small enough for 4 processes on 2 cores, and their synthetic data.

- `gpt`: a GPT-style decoder (token and position embeddings, pre-norm blocks of causal
  self-attention and a 4x MLP, an untied output head): many equal, large matrices, like BERT.
  `head_slices` > 1 computes the output head in vocabulary slices (as Megatron-LM's
  vocabulary-parallel output layer does): the same function, but the head's gradient, a
  quarter of the model, becomes ready slice by slice instead of all at once.
- `resnet`: a ResNet-style CNN (a stem, basic residual blocks in four stages with batch norm,
  global pooling, a classifier): many small tensors near the input, large ones near the output,
  like ResNet-50.

Every rank builds the same parameters (same seed) and its own fixed batches (seeded by rank), so
a benchmark spends no time on data and all schedulers see the same work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn


class ModelSpec(BaseModel):
    """Which model, how large, and the per-rank batch."""

    name: str = Field("gpt", description="'gpt' or 'resnet'")
    width: int = Field(384, description="gpt: model width; resnet: channels of the first stage")
    layers: int = Field(4, description="gpt: transformer blocks; resnet: blocks per stage")
    vocab: int = Field(8192, description="gpt: vocabulary size")
    head_slices: int = Field(1, ge=1, description="gpt: output head in this many vocabulary "
                             "slices (must divide vocab)")
    seq_len: int = Field(128, description="gpt: tokens per sample")
    image_size: int = Field(32, description="resnet: input height and width")
    classes: int = Field(100, description="resnet: output classes")
    batch: int = Field(4, description="samples per rank per iteration")


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class GPT(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.embed = nn.Embedding(spec.vocab, spec.width)
        self.pos = nn.Embedding(spec.seq_len, spec.width)
        self.blocks = nn.ModuleList(Block(spec.width, max(1, spec.width // 64))
                                    for _ in range(spec.layers))
        self.norm = nn.LayerNorm(spec.width)
        if spec.vocab % spec.head_slices:
            raise ValueError(f"ModelSpec.head_slices ({spec.head_slices}) must divide vocab "
                             f"({spec.vocab})")
        if spec.head_slices == 1:
            self.head = nn.Linear(spec.width, spec.vocab, bias=False)
        else:
            self.head = nn.ModuleList(
                nn.Linear(spec.width, spec.vocab // spec.head_slices, bias=False)
                for _ in range(spec.head_slices))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if isinstance(self.head, nn.ModuleList):
            return torch.cat([slice_(x) for slice_ in self.head], dim=-1)
        return self.head(x)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        w = spec.width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU())
        blocks, cin = [], w
        for stage, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            for i in range(spec.layers):
                blocks.append(BasicBlock(cin, cout, 2 if stage and i == 0 else 1))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(cin, spec.classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build_model(spec: ModelSpec, seed: int = 0) -> nn.Module:
    """The same parameters on every rank."""
    torch.manual_seed(seed)
    if spec.name == "gpt":
        return GPT(spec)
    if spec.name == "resnet":
        return ResNet(spec)
    raise ValueError(f"ModelSpec.name must be 'gpt' or 'resnet', got {spec.name!r}")


def make_batches(spec: ModelSpec, rank: int, count: int = 2) -> list[tuple[torch.Tensor, ...]]:
    """`count` fixed (input, target) batches of this rank, reused in rotation."""
    g = torch.Generator().manual_seed(1000 + rank)
    batches = []
    for _ in range(count):
        if spec.name == "gpt":
            tokens = torch.randint(0, spec.vocab, (spec.batch, spec.seq_len + 1), generator=g)
            batches.append((tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()))
        else:
            images = torch.randn(spec.batch, 3, spec.image_size, spec.image_size, generator=g)
            batches.append((images, torch.randint(0, spec.classes, (spec.batch,), generator=g)))
    return batches


def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output.flatten(0, -2) if output.dim() > 2 else output,
                           target.flatten())


def fsdp_units(model: nn.Module) -> list[nn.Module]:
    """The modules FSDP2 shards one by one (the blocks), before the root takes the rest."""
    return list(model.blocks)
