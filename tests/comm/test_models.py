"""The benchmark models: the sliced output head is the same function as the whole one."""

from __future__ import annotations

import pytest
import torch

from benchmarks.comm.models import ModelSpec, build_model, loss_fn, make_batches

SPEC = ModelSpec(name="gpt", width=32, layers=1, vocab=64, seq_len=8, batch=2)


def test_sliced_head_computes_the_same_logits_and_gradients():
    whole = build_model(SPEC)
    sliced = build_model(SPEC.model_copy(update={"head_slices": 4}))
    assert len(sliced.head) == 4
    with torch.no_grad():  # same weights: the whole head's rows, cut by vocabulary
        for name, p in sliced.named_parameters():
            if name.startswith("head."):
                k = int(name.split(".")[1])
                p.copy_(whole.head.weight[16 * k:16 * (k + 1)])
            else:
                p.copy_(dict(whole.named_parameters())[name])
    x, y = make_batches(SPEC, rank=0)[0]
    out_whole, out_sliced = whole(x), sliced(x)
    torch.testing.assert_close(out_sliced, out_whole)
    loss_fn(out_whole, y).backward()
    loss_fn(out_sliced, y).backward()
    grad = torch.cat([s.weight.grad for s in sliced.head])
    torch.testing.assert_close(grad, whole.head.weight.grad)


def test_head_slices_must_divide_the_vocabulary():
    with pytest.raises(ValueError, match="head_slices"):
        build_model(SPEC.model_copy(update={"head_slices": 5}))
