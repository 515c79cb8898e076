"""Each session's business backend, rebuilt on demand from its action log.

A session's backend is an isolated copy of the pack's fixtures (``pack.new_environment()``)
plus the tool calls it has executed. Replicas keep a small cache of live copies keyed by the
log they reflect; on a miss (another replica served the last turn, this one restarted, or a
turn failed before it was saved) the copy is rebuilt by replaying the log, which takes a
couple of milliseconds. The log in the session store is the truth; the cache is a shortcut.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass

from wow_ray.scenario import Environment, Replay, ScenarioPack, ToolCall


def log_digest(actions: list[ToolCall]) -> str:
    """A digest of an action log (order matters)."""
    h = hashlib.sha256()
    for call in actions:
        h.update(json.dumps([call.name, call.arguments], sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class _Entry:
    env: Environment
    digest: str
    rules_version: str


class SessionEnvironments:
    """Live backends for recent sessions, at most ``capacity`` of them (least recent evicted)."""

    def __init__(self, pack: ScenarioPack, capacity: int = 128) -> None:
        self.pack = pack
        self.capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.rebuilds = 0

    def get(self, session_id: str, actions: list[ToolCall]) -> Environment:
        """The backend of ``session_id`` after exactly ``actions``."""
        digest = log_digest(actions)
        entry = self._entries.get(session_id)
        if entry is not None and entry.digest == digest:
            self._entries.move_to_end(session_id)
            return entry.env
        if entry is not None:
            entry.env.close()
        # Unchecked: the gate decided these when they ran, and the stored state reflects them.
        env = Replay(self.pack, check=False).run(actions).keep()
        self.rebuilds += 1
        self._entries[session_id] = _Entry(env, digest, self.pack.rules.version)
        self._entries.move_to_end(session_id)
        while len(self._entries) > self.capacity:
            _, old = self._entries.popitem(last=False)
            old.env.close()
        return env

    def advanced(self, session_id: str, actions: list[ToolCall]) -> None:
        """Record that the cached backend of ``session_id`` now reflects ``actions``."""
        entry = self._entries.get(session_id)
        if entry is not None:
            entry.digest = log_digest(actions)

    def drop(self, session_id: str) -> None:
        entry = self._entries.pop(session_id, None)
        if entry is not None:
            entry.env.close()
