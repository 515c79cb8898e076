"""Training on what the loop has: several datasets with weights, samples of some agents only,
and a start from an existing adapter (fast: no Ray, a tiny random Llama)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from wow_ray.training.config import FinetuneConfig
from wow_ray.training.job import mixed_records, weighted
from wow_ray.training.loop import load_model


def rec(agent: str, i: object):
    return SimpleNamespace(meta=SimpleNamespace(agent=agent), id=f"{agent}-{i}")


class FakeVersion:
    def __init__(self, train, eval_=()):
        self.parts = {"train": list(train), "eval": list(eval_)}

    def records(self, split):
        return iter(self.parts[split])


def test_weights_repeat_or_subsample_a_dataset_with_a_seed():
    items = list(range(10))
    assert weighted(items, 1.0, 0) == items
    assert weighted(items, 2.0, 0) == items + items
    half = weighted(items, 0.5, 3)
    assert len(half) == 5 and set(half) <= set(items) and half == weighted(items, 0.5, 3)
    assert len(weighted(items, 1.5, 0)) == 15


def test_a_mix_weights_each_dataset_and_keeps_only_the_chosen_agents():
    cold = FakeVersion([rec("response", i) for i in range(4)] + [rec("master", i) for i in range(4)],
                       [rec("response", 9), rec("master", 9)])
    failures = FakeVersion([rec("response", f"f{i}") for i in range(2)])
    config = FinetuneConfig(base_model="m", output_name="o", agents=["response"],
                            datasets=[{"dataset": "cold", "weight": 0.5},
                                      {"dataset": "failures", "weight": 3}])
    train = mixed_records(config, [cold, failures], "train")
    assert all(r.meta.agent == "response" for r in train)
    assert sum(r.id.startswith("response-f") for r in train) == 6  # failures x3
    assert len(train) == 2 + 6  # half of cold's 4 response samples, plus failures x3
    assert [r.id for r in mixed_records(config, [cold, failures], "eval")] == ["response-9"]


def test_a_job_needs_data_and_continues_an_adapter_only_with_lora():
    with pytest.raises(ValidationError, match="set dataset or datasets"):
        FinetuneConfig(base_model="m", output_name="o")
    with pytest.raises(ValidationError, match="init_adapter needs lora"):
        FinetuneConfig(base_model="m", output_name="o", dataset="d", init_adapter="a@production")
    both = FinetuneConfig(base_model="m", output_name="o", dataset="d",
                          datasets=[{"dataset": "e", "weight": 2}])
    assert [(p.dataset, p.weight) for p in both.parts()] == [("d", 1.0), ("e", 2.0)]


def test_training_can_start_from_an_existing_adapter(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2,
                                        num_key_value_heads=1))
    base.save_pretrained(tmp_path / "base")
    trained = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                              init_lora_weights=False))
    trained.save_pretrained(tmp_path / "adapter")
    config = FinetuneConfig(base_model="m", output_name="o", dataset="d",
                            lora={"r": 4, "target_modules": ["q_proj", "v_proj"]})
    tokens = torch.tensor([[1, 5, 9, 3]])
    fresh = load_model(str(tmp_path / "base"), config, torch.device("cpu"))
    continued = load_model(str(tmp_path / "base"), config, torch.device("cpu"),
                           str(tmp_path / "adapter"))
    with torch.no_grad():
        expected = trained.eval()(tokens).logits
        torch.testing.assert_close(continued.eval()(tokens).logits, expected)
        assert not torch.allclose(fresh.eval()(tokens).logits, expected)  # fresh LoRA starts at 0
    assert any(p.requires_grad for n, p in continued.named_parameters() if "lora_" in n)
