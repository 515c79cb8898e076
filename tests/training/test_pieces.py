"""The fine-tuning job's pieces without Ray: tokenisation with assistant-only labels, packing
that keeps samples apart, the step plan, the schedule, the DPO loss and its LoRA reference,
the output folder, and the job's configuration."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from wow_ray.errors import ConfigError
from wow_ray.training.config import FinetuneConfig, load_finetune_config
from wow_ray.training.dpo import dpo_loss, sequence_logps, tokenise_pairs
from wow_ray.training.loop import lr_at, save_output
from wow_ray.training.objectives import DPOObjective, reference_for, to_device
from wow_ray.training.sft_data import IGNORE, PackingError, StepPlan, pack, tokenise_chat

CHAT = [
    {"role": "system", "content": "You are the order agent."},
    {"role": "user", "content": "Where is order O1?"},
    {"role": "assistant", "content": "Let me check."},
    {"role": "user", "content": "Thanks."},
    {"role": "assistant", "content": '{"intent": "where_is_order"}'},
]


def labelled_text(tokenizer, ids, labels) -> str:
    return tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != IGNORE])


def test_only_the_assistant_target_carries_labels(tokenizer):
    ids, labels = tokenise_chat(tokenizer, CHAT, "last")
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert labelled_text(tokenizer, ids, labels) == '{"intent": "where_is_order"}<|im_end|>\n'
    ids, labels = tokenise_chat(tokenizer, CHAT, "all")
    assert labelled_text(tokenizer, ids, labels) == (
        'Let me check.<|im_end|>\n{"intent": "where_is_order"}<|im_end|>\n')


@pytest.fixture(scope="module")
def small_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def test_packing_keeps_every_sample_once_and_attention_inside_it(tokenizer, small_llama):
    chats = [[CHAT[1], {"role": "assistant", "content": "x " * n}] for n in (3, 40, 7, 90, 12)]
    samples = [tokenise_chat(tokenizer, c) for c in chats]
    too_long = tokenise_chat(tokenizer, [CHAT[1], {"role": "assistant", "content": "y " * 400}])
    rows = pack([*samples, too_long], seq_len=160, pad_id=2)
    assert rows.dropped == 1 and rows.samples == 5
    assert len(rows) < 5 and rows.input_ids.shape[1] <= 160  # several samples share a row
    assert rows.target_tokens == sum(sum(1 for t in lab[1:] if t != IGNORE) for _, lab in samples)
    # Each sample's logits in its packed row equal its logits alone: no attention across.
    with torch.no_grad():
        packed = small_llama(input_ids=torch.from_numpy(rows.input_ids),
                             position_ids=torch.from_numpy(rows.position_ids),
                             use_cache=False).logits
        for ids, _ in samples:
            alone = small_llama(input_ids=torch.tensor([ids])).logits[0]
            hits = [(r, c) for r in range(len(rows)) for c in range(rows.input_ids.shape[1])
                    if rows.position_ids[r, c] == 0
                    and rows.input_ids[r, c:c + len(ids)].tolist() == ids]
            assert hits, "every sample sits whole in some row"
            r, c = hits[0]
            torch.testing.assert_close(packed[r, c:c + len(ids)], alone, atol=1e-4, rtol=1e-4)


def test_the_step_plan_splits_each_step_between_workers_and_reshuffles_each_epoch():
    plan = StepPlan(40, workers=2, micro_batch_size=2, grad_accum=3, seed=1, epochs=2,
                    max_steps=None)
    assert plan.steps_per_epoch == 3 and plan.total_steps == 6
    seen = []
    for step in range(3):
        mine = [sum(plan.micro_batches(step, r), []) for r in range(2)]
        assert [len(m) for m in plan.micro_batches(step, 0)] == [2, 2, 2]
        assert not set(mine[0]) & set(mine[1])
        seen += mine[0] + mine[1]
    assert len(set(seen)) == 36  # no item twice within an epoch
    assert plan.micro_batches(1, 1) == plan.micro_batches(1, 1)  # a pure function of the step
    assert plan.micro_batches(0, 0) != plan.micro_batches(3, 0)  # the next epoch reshuffles
    with pytest.raises(PackingError, match="cannot fill one step"):
        StepPlan(5, workers=2, micro_batch_size=2, grad_accum=2, seed=0, epochs=1, max_steps=None)


def test_learning_rate_warms_up_then_decays_by_cosine_to_its_floor():
    config = FinetuneConfig(base_model="m", dataset="d", output_name="o", lr=1.0, warmup_steps=4,
                            min_lr_ratio=0.1)
    lrs = [lr_at(s, config, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False))
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 15 / 16)))


def test_dpo_loss_is_log_two_at_the_reference_and_falls_as_chosen_wins():
    ref = torch.tensor([-10.0, -12.0, -11.0, -9.0])  # chosen 2, then rejected 2
    assert dpo_loss(ref, ref, 0.1)["loss"] == pytest.approx([math.log(2)] * 2)
    better = ref + torch.tensor([1.0, 1.0, -1.0, -1.0])
    out = dpo_loss(better, ref, 0.1)
    assert (out["loss"] < math.log(2)).all() and out["accuracy"].tolist() == [1.0, 1.0]


def test_dpo_with_lora_uses_the_model_with_adapters_off_as_reference(tokenizer, small_llama):
    from peft import LoraConfig, get_peft_model

    from wow_ray.data.formats import Message

    class Pair:
        prompt = [Message(role="user", content="Refund me.")]
        chosen, rejected = "I can offer a partial refund.", "Refunded in full."

    pairs = tokenise_pairs(tokenizer, [Pair()], seq_len=64, max_prompt_tokens=32)
    chosen_ids, chosen_labels = pairs.chosen[0]
    assert labelled_text(tokenizer, chosen_ids, chosen_labels) == Pair.chosen + "<|im_end|>\n"
    config = FinetuneConfig(base_model="m", dataset="d", output_name="o", method="dpo",
                            lora={"r": 4})
    model = get_peft_model(small_llama, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                   init_lora_weights=False))
    batch = to_device(pairs.batch([0]), torch.device("cpu"))
    objective, reference = DPOObjective(config), reference_for(config, model)
    with torch.no_grad():
        with model.disable_adapter():
            base = sequence_logps(model, batch)
        tuned = sequence_logps(model, batch)
        loss, _ = objective.loss_sum(model, batch, reference)
    assert not torch.allclose(base, tuned)  # the adapters matter...
    expected = dpo_loss(tuned, base, config.dpo.beta)["loss"].sum()
    assert loss == pytest.approx(expected.item())  # ...and the reference is the base


def test_merged_lora_output_is_a_plain_model_that_computes_the_same(tmp_path, tokenizer,
                                                                     small_llama, registry):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir = registry.local_dir(registry.get("model", "smollm2-135m"))
    model = get_peft_model(small_llama, LoraConfig(r=4, target_modules=["q_proj"],
                                                   init_lora_weights=False))
    tokens = torch.tensor([tokenise_chat(tokenizer, CHAT)[0]])
    with torch.no_grad():
        expected = model(tokens).logits
    config = FinetuneConfig(base_model="m", dataset="d", output_name="o", lora={"merge": True})
    save_output(model, config, str(base_dir), tmp_path / "hf")
    assert (tmp_path / "hf" / "config.json").is_file()
    assert not (tmp_path / "hf" / "adapter_config.json").exists()
    assert (tmp_path / "hf" / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(tokens).logits, expected, atol=1e-4, rtol=1e-4)


def test_a_bad_job_config_names_the_field(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("base_model: m\ndataset: d\noutput_name: Bad Name\nlora: {r: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_finetune_config(path)
    assert "output_name" in str(err.value) and "lora.r" in str(err.value)
    path.write_text("base_model: m\ndataset: d\noutput_name: ok\nworkers: 2\n"
                    "fault_injection: {rank: 3, at_step: 2}\n")
    with pytest.raises(ConfigError, match="fault_injection.rank"):
        load_finetune_config(path)


def test_the_job_explains_itself_and_validates_without_running(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "train_jobs.finetune", "--help"],
                               capture_output=True, text=True, check=True).stdout
    for option in ("ray job submit", "lora.r", "synchroniser", "checkpoint_every", "dpo.beta"):
        assert option in help_text
    path = tmp_path / "job.yaml"
    path.write_text("base_model: m\ndataset: d\noutput_name: ok\n")
    out = subprocess.run([sys.executable, "-m", "train_jobs.finetune", "--config", str(path),
                          "--dry-run"], capture_output=True, text=True, check=True).stdout
    assert '"synchroniser": "dear"' in out


def test_wow_ray_train_reports_a_missing_dataset_in_one_line(tmp_path, monkeypatch, registry,
                                                             tiny_model):
    from typer.testing import CliRunner

    from wow_ray.cli import app

    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", registry.storage.root)
    path = tmp_path / "job.yaml"
    path.write_text(f"base_model: {tiny_model.ref}\ndataset: no-such-data\noutput_name: x\n")
    result = CliRunner().invoke(app, ["train", "run", str(path)])
    assert result.exit_code != 0
    assert "no dataset named 'no-such-data'" in str(result.exception)


def test_the_job_config_embeds_every_dear_setting_and_the_shipped_configs_load(tmp_path):
    from pathlib import Path

    from wow_ray.dear import DeARConfig

    path = tmp_path / "job.yaml"
    path.write_text("base_model: m\ndataset: d\noutput_name: ok\n"
                    "dear: {collective: ring, all_gather_lookahead: 2, tune_bounds_mb: [2, 8]}\n")
    dear = load_finetune_config(path).dear
    assert dear == DeARConfig(collective="ring", all_gather_lookahead=2, tune_bounds_mb=(2, 8))
    again = FinetuneConfig.model_validate(load_finetune_config(path).model_dump(mode="json"))
    assert again.dear == dear  # what the driver sends the workers comes back the same
    for bad, field in (("{colective: ring}", "dear.colective"),
                       ("{collective: mpi}", "collective must be")):
        path.write_text(f"base_model: m\ndataset: d\noutput_name: ok\ndear: {bad}\n")
        with pytest.raises(ConfigError, match=field):
            load_finetune_config(path)
    shipped = sorted(Path(__file__).parents[2].joinpath("train_jobs", "configs").glob("*.yaml"))
    assert len(shipped) == 3
    assert {load_finetune_config(p).dear.collective for p in shipped} <= {"auto", "native"}
