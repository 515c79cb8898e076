"""Thin import path of the dialogue app for ``serve run`` YAML (``serve_apps.dialogue:build_dialogue_app``);
the builder lives in the library (``wow_ray/serving/dialogue_app.py``)."""

from wow_ray.serving import build_dialogue_app

__all__ = ["build_dialogue_app"]
