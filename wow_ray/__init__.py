"""WOW-Ray: a self-evolving multi-agent customer-service system on Ray.

One folder per stage of the loop (see docs/design.md): scenario, agents, llm, data, dear, training,
evaluation, registry, serving. Entry points (serve_apps/, train_jobs/, evaluators/) import from
here, never the reverse.
"""

__version__ = "0.1.0"
