"""``wow-ray auth ...``: API keys with scopes, and customer tokens for testing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from wow_ray.serving.credentials import DEFAULT_KEYS_FILE, DEFAULT_SECRET_FILE

app = typer.Typer(
    help="Who may call the dialogue service. API keys carry a scope (customer: the business's "
    "app acting for its signed-in customers; operator: transcripts and tickets; admin: rules "
    "and models) and are stored hashed in a keys file the gateway re-reads when it changes. "
    "Customers are identified by tokens the business's app mints with a shared secret.",
    no_args_is_help=True,
)
console = Console(stderr=True)

KeysFile = Annotated[str, typer.Option("--keys-file", help="The gateway's keys file "
                                       "(its gateway.auth.api_keys_file).")]


@app.command("new-key")
def new_key(
    name: Annotated[str, typer.Argument(help="Who holds the key, e.g. web-app or console.")],
    scope: Annotated[str, typer.Option(help="customer, operator or admin.")] = "customer",
    keys_file: KeysFile = DEFAULT_KEYS_FILE,
) -> None:
    """Create a key (or replace the key of NAME: rotation) and print it once; only its hash is
    kept. A running gateway accepts it within a request, without a restart."""
    from wow_ray.serving.access import SCOPES
    from wow_ray.serving.credentials import add_key

    if scope not in SCOPES:
        raise typer.BadParameter(f"scope must be one of {', '.join(SCOPES)}", param_hint="--scope")
    key = add_key(keys_file, name, scope)  # type: ignore[arg-type]
    console.print(f"[green]{scope} key for {name}[/] written to {keys_file} (hashed); "
                  "keep it now, it is not shown again:")
    print(key)


@app.command()
def revoke(name: Annotated[str, typer.Argument(help="The key's holder.")],
           keys_file: KeysFile = DEFAULT_KEYS_FILE) -> None:
    """Remove NAME's key; a running gateway refuses it from the next request on."""
    from wow_ray.serving.credentials import revoke_key

    if not revoke_key(keys_file, name):
        console.print(f"[red]no key named {name} in {keys_file}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {name}")


@app.command("customer-token")
def customer_token(
    user: Annotated[str, typer.Argument(help="The customer's account id, e.g. U0214.")],
    unverified: Annotated[bool, typer.Option(help="The login did not verify the person.")] = False,
    ttl: Annotated[int, typer.Option(help="Seconds until it expires.", min=1)] = 3600,
    secret_file: Annotated[str, typer.Option(help="Where the shared secret is (created if "
                                             "missing); WOW_RAY_CUSTOMER_TOKEN_SECRET wins.")]
    = DEFAULT_SECRET_FILE,
) -> None:
    """Mint a customer token as the business's app would after its login (for tests and
    demos; in production the app mints it with any JWT library, HS256, audience 'wow-ray')."""
    from wow_ray.serving.access import mint_customer_token
    from wow_ray.serving.credentials import ensure_secret, read_secrets

    secrets = read_secrets(None, "WOW_RAY_CUSTOMER_TOKEN_SECRET") or [ensure_secret(secret_file)]
    print(mint_customer_token(secrets[0], user, verified=not unverified, ttl_s=ttl))
