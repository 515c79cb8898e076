"""Small randomly initialised Llama models, for tests and benchmarks (no model hub needed).

The tokenizer is the embedded SmolLM2 one (its chat template included), so a tiny model sees
exactly the token ids and chat rendering the real one does; only the weights are random. With
width 32 and two layers the whole model is about 6 MB, nearly all of it the tied embedding.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from wow_ray.config import EMBEDDED_MODEL
from wow_ray.registry import EntryKind, Registry, RegistryEntry, resolve_model


def register_random_llama(registry: Registry, name: str = "tiny-llama", *, hidden: int = 32,
                          layers: int = 2, heads: int = 4, kv_heads: int = 2,
                          intermediate: int | None = None, seed: int = 0,
                          tokenizer_from: str = EMBEDDED_MODEL) -> RegistryEntry:
    """Register (once; later calls return it) a random Llama with the given shape."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    intermediate = intermediate or 2 * hidden
    shape = f"h{hidden}-l{layers}-a{heads}-kv{kv_heads}-i{intermediate}-seed{seed}"
    source = f"random-llama:{shape}:tokenizer={tokenizer_from}"
    if existing := registry.find_by_source(EntryKind.MODEL, name, source):
        return existing
    tokenizer_dir = registry.local_dir(resolve_model(registry, tokenizer_from))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with tempfile.TemporaryDirectory(prefix="wow-ray-random-llama-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        return registry.register(
            EntryKind.MODEL, name, Path(tmp), source=source,
            metadata={"architecture": "LlamaForCausalLM", "random": True, "shape": shape,
                      "parameters": sum(p.numel() for p in model.parameters())},
        )
