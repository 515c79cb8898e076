"""The dialogue agents: a master that keeps control and specialists it calls as tools.

Independent of Ray: every agent runs in-process with any chat client (``wow_ray.llm.chat``),
and a Ray Serve deployment (``serve_apps/dialogue.py``) is a thin wrapper around one.
"""
