"""Thin import path of the LLM app for ``serve run`` YAML (``serve_apps.llm:build_llm_app``);
the builder lives in the library (``wow_ray/serving/llm_app.py``)."""

from wow_ray.serving import build_llm_app

__all__ = ["build_llm_app"]
