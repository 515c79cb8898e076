"""Fine-tuning on Ray Train: SFT and DPO, full or LoRA, synchronised by DeAR or DDP.

    from wow_ray.training import load_finetune_config, run_finetune
    result = run_finetune(load_finetune_config("train_jobs/configs/sft_lora_smollm2.yaml"))
    result.entry.ref          # the registered adapter (or model), lineage in result.entry.lineage

The job entry point is ``python -m train_jobs.finetune --config <yaml>`` (``ray job submit``);
``wow-ray train run <yaml>`` is the same from the CLI. Internals: ``sft_data`` (chat-template
tokenisation, packing, the step plan), ``dpo`` (pairs and loss), ``objectives``, ``sync``
(DeAR or DDP), ``loop`` (the per-worker function), ``job`` (driver and registration).
"""

from wow_ray.training.config import FinetuneConfig, load_finetune_config
from wow_ray.training.job import FinetuneError, FinetuneResult, run_finetune
from wow_ray.training.tiny import register_random_llama

__all__ = [
    "FinetuneConfig",
    "FinetuneError",
    "FinetuneResult",
    "load_finetune_config",
    "register_random_llama",
    "run_finetune",
]
