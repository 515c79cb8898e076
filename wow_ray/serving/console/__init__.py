"""The operators' web console, served by the gateway at ``<route prefix>/console``.

Server-rendered (Jinja2 templates, one small vendored script for live updates and the
streaming chat): nothing to build at install. See ``app.py`` for login and CSRF.
"""

from wow_ray.serving.console.app import attach_console, console_app

__all__ = ["attach_console", "console_app"]
