"""Credentials kept on this machine: the customer-token secret and API keys files.

The gateway reads a keys file of hashed keys and a customer-token secret; the business's app
holds the plain keys and mints customer tokens. On one machine (``make demo``, ``wow-ray
chat``) the CLI plays the business's app: it creates a secret and a customer-channel key for
itself once, under ``~/.wow_ray/`` with owner-only permissions, and mints a token per chat.
Files are replaced atomically, so a gateway re-reading them never sees half a file.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import yaml

from wow_ray.serving.access import (
    ApiKey,
    Scope,
    check_secret,
    hash_api_key,
    new_api_key,
    read_keys_file,
)

HOME = Path("~/.wow_ray")
DEFAULT_KEYS_FILE = str(HOME / "api_keys.yaml")
DEFAULT_SECRET_FILE = str(HOME / "customer_token_secret")
CLI_KEY_FILE = str(HOME / "cli_api_key")
CLI_KEY_NAME = "wow-ray-cli"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by its owner only, replacing ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_secrets(file: str | None, env_var: str | None) -> list[str]:
    """The customer-token secrets in force: the environment's (comma-separated), then the file's."""
    found = [s.strip() for s in os.environ.get(env_var or "", "").split(",") if s.strip()]
    if file and Path(file).expanduser().exists():
        found += [line.strip() for line in Path(file).expanduser().read_text().splitlines()
                  if line.strip()]
    return [check_secret(s) for s in found]


def ensure_secret(file: str = DEFAULT_SECRET_FILE) -> str:
    """The secret in ``file``, created on first use."""
    path = Path(file).expanduser()
    if not path.exists():
        write_private(path, secrets.token_urlsafe(48) + "\n")
    return check_secret(path.read_text().splitlines()[0].strip())


def add_key(keys_file: str, name: str, scope: Scope, key: str | None = None) -> str:
    """Add a key (new unless given) to ``keys_file`` under ``name``; returns the plain key, which
    is stored nowhere else."""
    path = Path(keys_file).expanduser()
    keys = [k for k in (read_keys_file(path) if path.exists() else []) if k.name != name]
    key = key or new_api_key()
    keys.append(ApiKey(name=name, scope=scope, sha256=hash_api_key(key)))
    write_private(path, _dump(keys))
    return key


def revoke_key(keys_file: str, name: str) -> bool:
    path = Path(keys_file).expanduser()
    keys = read_keys_file(path) if path.exists() else []
    kept = [k for k in keys if k.name != name]
    if len(kept) != len(keys):
        write_private(path, _dump(kept))
    return len(kept) != len(keys)


def ensure_cli_key(keys_file: str = DEFAULT_KEYS_FILE) -> str:
    """This machine's own customer-channel key for the CLI chat, created once."""
    path = Path(CLI_KEY_FILE).expanduser()
    known = Path(keys_file).expanduser()
    if path.exists():
        key = path.read_text().strip()
        if known.exists() and any(k.sha256 == hash_api_key(key) for k in read_keys_file(known)):
            return key
    key = add_key(keys_file, CLI_KEY_NAME, "customer")
    write_private(path, key + "\n")
    return key


def _dump(keys: list[ApiKey]) -> str:
    return ("# API keys of the WOW-Ray gateway, hashed (sha256). Managed by `wow-ray auth`;\n"
            "# the gateway re-reads this file when it changes.\n"
            + yaml.safe_dump({"keys": [k.model_dump() for k in keys]}, sort_keys=False))
