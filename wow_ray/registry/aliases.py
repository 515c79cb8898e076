"""Aliases: names such as ``production`` or ``candidate`` that point at one version of an entry.

Moving an alias is how a model reaches customers, so a move is a record, never an edit: each
move is one immutable JSON file, ``registry/aliases/<kind>/<name>/<alias>/m000001.json``, and the
alias points where its newest move says. A move claims the next number with
``Storage.create_if_absent`` (compare-and-set on the shared storage), so of two movers that read
the same state exactly one wins and the other gets :class:`AliasConflict`; nothing is ever
overwritten, which makes the files the alias's history (when, by whom, why, on which report) and
makes a rollback simply one more move, back to where the alias was before.
"""

from __future__ import annotations

import getpass
import re
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from wow_ray.errors import RegistryError
from wow_ray.registry.records import NAME_PATTERN, EntryKind, RegistryEntry

if TYPE_CHECKING:
    from wow_ray.registry.records import Registry

ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
PRODUCTION = "production"
CANDIDATE = "candidate"
_MOVE_FILE = re.compile(r"^m(\d{6})\.json$")


class AliasConflict(RegistryError):
    """Another mover moved the alias between our read and our write; nothing was changed."""


class AliasMove(BaseModel):
    """One move of one alias: from ``previous`` to ``version``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EntryKind
    name: str = Field(pattern=NAME_PATTERN)
    alias: str = Field(pattern=ALIAS_PATTERN)
    seq: int = Field(ge=1, description="The move's number in this alias's history.")
    version: int = Field(ge=1, description="The version the alias points at after this move.")
    previous: int | None = Field(None, description="Where it pointed before (None: nowhere).")
    moved_at: datetime
    by: str = Field(description="Who or what moved it: a person, 'flywheel turn 3'...")
    reason: str = ""
    report: str | None = Field(None, description="The report ('name:vN') the move rests on.")
    rollback_of: int | None = Field(None, description="For a rollback: the move it undoes.")

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"


def split_alias(ref: str) -> tuple[str, str] | None:
    """'name@alias' -> (name, alias); None for a reference without an alias."""
    if "@" not in ref:
        return None
    name, _, alias = ref.partition("@")
    if not re.match(NAME_PATTERN, name) or not re.match(ALIAS_PATTERN, alias):
        raise RegistryError(f"{ref!r} is not an alias reference ('name@alias')")
    return name, alias


def default_mover() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Aliases:
    """Read, move and roll back the aliases of one registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.storage = registry.storage

    def _folder(self, kind: EntryKind, name: str, alias: str) -> str:
        if not re.match(ALIAS_PATTERN, alias):
            raise RegistryError(f"{alias!r} is not a valid alias: lower-case letters, digits, '_-'")
        return f"registry/aliases/{kind}/{name}/{alias}"

    def history(self, kind: EntryKind, name: str, alias: str) -> list[AliasMove]:
        """Every move of the alias, oldest first."""
        folder = self._folder(kind, name, alias)
        return [AliasMove.model_validate_json(self.storage.read_text(f"{folder}/{file}"))
                for file in self.storage.list_names(folder) if _MOVE_FILE.match(file)]

    def current(self, kind: EntryKind, name: str, alias: str) -> AliasMove | None:
        """The alias's newest move (where it points), or None when it was never set."""
        moves = self.history(kind, name, alias)
        return moves[-1] if moves else None

    def entry(self, kind: EntryKind, name: str, alias: str) -> RegistryEntry:
        """The entry the alias points at; RegistryError when the alias is not set."""
        move = self.current(kind, name, alias)
        if move is None:
            raise RegistryError(f"{kind} {name!r} has no alias {alias!r}")
        return self.registry.get(kind, move.ref)

    def names(self, kind: EntryKind | None = None) -> list[tuple[EntryKind, str, str]]:
        """Every (kind, name, alias) that has been set."""
        found = []
        for k in [kind] if kind else list(EntryKind):
            for name in self.storage.list_names(f"registry/aliases/{k}"):
                for alias in self.storage.list_names(f"registry/aliases/{k}/{name}"):
                    found.append((k, name, alias))
        return found

    def move(self, kind: EntryKind, name: str, alias: str, version: int, *, by: str | None = None,
             reason: str = "", report: str | None = None, expected: int | None | bool = True,
             rollback_of: int | None = None) -> AliasMove:
        """Point ``alias`` at ``version`` of ``name``, atomically, and record the move.

        ``expected`` is where the caller believes the alias points now (a version, or None for
        "not set"); a different current position raises :class:`AliasConflict`. The default
        (True) expects what this call itself reads. Either way, a mover that loses the race
        for the next move number to another one gets :class:`AliasConflict` too.
        """
        self.registry.get(kind, f"{name}:v{version}")  # the version must exist
        folder = self._folder(kind, name, alias)
        current = self.current(kind, name, alias)
        now = current.version if current else None
        if expected is not True and expected != now:
            raise AliasConflict(f"{kind} {name}@{alias} points at "
                                f"{'v' + str(now) if now else 'nothing'}, not at "
                                f"{'v' + str(expected) if expected else 'nothing'} as expected")
        seq = current.seq + 1 if current else 1
        move = AliasMove(kind=kind, name=name, alias=alias, seq=seq, version=version,
                         previous=now, moved_at=datetime.now(UTC), by=by or default_mover(),
                         reason=reason, report=report, rollback_of=rollback_of)
        try:
            self.storage.create_if_absent(f"{folder}/m{seq:06d}.json",
                                          move.model_dump_json(indent=2))
        except FileExistsError:
            winner = self.current(kind, name, alias)
            raise AliasConflict(f"{kind} {name}@{alias} was moved by {winner.by if winner else '?'}"
                                f" to v{winner.version if winner else '?'} at the same time; "
                                "nothing was changed") from None
        return move

    def rollback(self, kind: EntryKind, name: str, alias: str, *, by: str | None = None,
                 reason: str = "rollback") -> AliasMove:
        """Move the alias back to where it pointed before its newest move."""
        current = self.current(kind, name, alias)
        if current is None or current.previous is None:
            raise RegistryError(f"{kind} {name}@{alias} has no earlier version to roll back to")
        return self.move(kind, name, alias, current.previous, by=by, reason=reason,
                         expected=current.version, rollback_of=current.seq)
