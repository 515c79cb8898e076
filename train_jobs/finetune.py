"""Fine-tune a registered model on a registered dataset with Ray Train (DeAR or DDP).

    ray job submit --address http://127.0.0.1:8265 -- python -m train_jobs.finetune \\
        --config train_jobs/configs/sft_lora_smollm2.yaml
    python -m train_jobs.finetune --config job.yaml      # joins RAY_ADDRESS, else a local Ray

The YAML's top-level keys are the options below (method sft or dpo; full fine-tuning, or
LoRA with a `lora:` section). The result is registered as `output_name` (an adapter over the
base model, or a model) with its lineage; an adapter is served at once by the running LLM
app as `<base>:<output_name>`, without restarting it.
"""

from __future__ import annotations

import argparse
import json
import sys

from wow_ray.errors import WowRayError


def parser() -> argparse.ArgumentParser:
    from wow_ray.training.config import describe_fields

    return argparse.ArgumentParser(
        prog="python -m train_jobs.finetune",
        description=__doc__,
        epilog="job options (YAML keys):\n" + "\n".join(describe_fields()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    p = parser()
    p.add_argument("--config", required=True, help="The job's YAML file (options below).")
    p.add_argument("--settings", help="WOW-Ray settings YAML (storage_path, ray_address).")
    p.add_argument("--dry-run", action="store_true",
                   help="Validate the config, print it resolved, and exit.")
    args = p.parse_args(argv)
    from wow_ray.config import load_settings
    from wow_ray.training import load_finetune_config, run_finetune

    try:
        config = load_finetune_config(args.config)
        if args.dry_run:
            print(config.model_dump_json(indent=2))
            return 0
        result = run_finetune(config, load_settings(args.settings))
    except WowRayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"registered": result.entry.ref, "kind": str(result.entry.kind),
                      "base_model": result.entry.base_model, "metrics": result.metrics,
                      "run": result.run_path}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
