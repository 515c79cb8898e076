"""Customer situations for cold start, sampled from the pack, never from held-out tasks.

A pack with no logged dialogues still has what a case needs: customers and their records in
the backend fixtures, intents with their slots, the rules, and the playbooks' resolutions. A
situation is sampled by picking an intent, a customer who has the records its slots name,
slot values consistent with each other (the item belongs to the order, the order to the
customer), and now and then a demand the rules may refuse, evidence, a flag, an unverified
identity, or a second request. The oracle then says what happens, and the selection keeps a
balanced number of each outcome per intent (which rules allowed, which refused), so the rare
edge cases of the rules are as present as the common path.

Held out (default: the dev and test splits): every customer those tasks name and every record
the customer owns are never sampled, and ``LeakGuard`` checks emitted samples by content (ids,
normalised task texts, situations) rather than by task id alone.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from wow_ray.scenario import Oracle, OracleResult, ScenarioPack, Situation
from wow_ray.scenario.spec import CallStep, ChooseStep

_WORDS = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> str:
    """Lower-case words joined by single spaces: what the leak check compares."""
    return " ".join(_WORDS.findall(text.lower()))


def situation_key(situation: Situation) -> str:
    """A canonical fingerprint of a situation (customer, requests, evidence, flags)."""
    data = situation.model_dump(mode="json")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def request_keys(situation: Situation) -> set[str]:
    """``user|intent|slot=value...`` for each request: the combinations a leak would repeat."""
    keys = set()
    for r in situation.requests:
        slots = ",".join(f"{k}={r.slots[k]}" for k in sorted(r.slots))
        keys.add(f"{situation.user_id}|{r.intent}|{slots}")
    return keys


# --------------------------------------------------------------------------- the backend index


class Ownership:
    """Which customer owns each fixture row, following references up to the customer table."""

    def __init__(self, pack: ScenarioPack) -> None:
        self.pack = pack
        self.user_table = _user_table(pack)
        self.user_key = pack.schema.tables[self.user_table].primary_key if self.user_table else None
        self.table_of_key = {spec.primary_key: name for name, spec in pack.schema.tables.items()}
        self.owner: dict[tuple[str, str], str] = {}  # (table, primary key value) -> user id
        self._resolve()
        self.rows_of: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for table, spec in pack.schema.tables.items():
            for row in pack.fixtures.get(table, []):
                user = self.owner.get((table, str(row[spec.primary_key])))
                if user is not None:
                    self.rows_of[(table, user)].append(row)
        self.owned_tables = {table for table, _ in self.owner}

    def _resolve(self) -> None:
        tables = self.pack.schema.tables
        if self.user_table is None:
            return
        for row in self.pack.fixtures.get(self.user_table, []):
            uid = str(row[self.user_key])
            self.owner[(self.user_table, uid)] = uid
        for _ in range(len(tables)):  # references form a DAG: depth <= number of tables
            changed = False
            for table, spec in tables.items():
                refs = [(c, col.references.split(".")[0]) for c, col in spec.columns.items()
                        if col.references and c != spec.primary_key]
                for row in self.pack.fixtures.get(table, []):
                    key = (table, str(row[spec.primary_key]))
                    if key in self.owner:
                        continue
                    for column, target in refs:
                        owner = self.owner.get((target, str(row.get(column))))
                        if owner is not None:
                            self.owner[key] = owner
                            changed = True
                            break
            if not changed:
                return

    def owned_ids(self, user_id: str) -> set[str]:
        return {key for (table, key), owner in self.owner.items() if owner == user_id}


def _user_table(pack: ScenarioPack) -> str | None:
    for entity in pack.manifest.entities.values():
        if "dialogue.user_id" in entity.lookup:
            return entity.table
    return None


# --------------------------------------------------------------------------- held out


@dataclass
class LeakGuard:
    """What held-out tasks contain, to keep it out of training data and to prove it stayed out."""

    splits: tuple[str, ...]
    task_ids: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    entity_ids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)
    situations: set[str] = field(default_factory=set)
    requests: set[str] = field(default_factory=set)

    @classmethod
    def from_pack(cls, pack: ScenarioPack, splits: tuple[str, ...] = ("dev", "test"),
                  ownership: Ownership | None = None) -> LeakGuard:
        guard = cls(splits=tuple(splits))
        ownership = ownership or Ownership(pack)
        for task in pack.tasks:
            if task.split not in splits:
                continue
            guard.task_ids.add(task.id)
            s = task.situation
            if s.user_id:
                guard.users.add(s.user_id)
                guard.entity_ids |= ownership.owned_ids(s.user_id)
            for r in s.requests:
                guard.entity_ids |= {str(v) for k, v in r.slots.items()
                                     if k in ownership.table_of_key and _is_owned(ownership, k, v)}
            ins = task.user_scenario.instructions
            for text in (ins.reason_for_call, ins.known_info, ins.unknown_info, ins.task_instructions):
                if text and len(normalise(text)) >= 24:
                    guard.texts.add(normalise(text))
            guard.situations.add(situation_key(s))
            guard.requests |= request_keys(s)
        return guard

    def situation_allowed(self, situation: Situation) -> bool:
        """False if the situation names a held-out customer or record, or repeats a task's."""
        if situation.user_id in self.users:
            return False
        if situation_key(situation) in self.situations or request_keys(situation) & self.requests:
            return False
        return not any(str(v) in self.entity_ids for r in situation.requests for v in r.slots.values())

    def leaks_in(self, text: str) -> list[str]:
        """Held-out ids and task texts found in ``text`` (empty: clean)."""
        found = [i for i in _ID_TOKENS.findall(text) if i.upper() in self.entity_ids]
        norm = normalise(text)
        found += [t[:60] for t in self.texts if t in norm]
        return found


_ID_TOKENS = re.compile(r"\b[A-Za-z]{1,3}[0-9]{3,}\b")


def _is_owned(ownership: Ownership, slot: str, value: Any) -> bool:
    return (ownership.table_of_key[slot], str(value)) in ownership.owner


# --------------------------------------------------------------------------- sampling


@dataclass
class SamplerConfig:
    """Probabilities of the variations a sampled situation may carry."""

    optional_slot: float = 0.6
    demand: float = 0.25
    demand_amount: float = 0.5
    accept_alternatives: float = 0.6
    evidence: float = 0.4
    flag: float = 0.03
    unverified: float = 0.06
    second_request: float = 0.15
    amounts: tuple[float, ...] = (5, 10, 20, 30, 40, 50, 80)


class SituationSampler:
    """Random, internally consistent situations from one pack's fixtures."""

    def __init__(self, pack: ScenarioPack, guard: LeakGuard, ownership: Ownership | None = None,
                 config: SamplerConfig | None = None) -> None:
        self.pack = pack
        self.guard = guard
        self.own = ownership or Ownership(pack)
        self.config = config or SamplerConfig()
        users = pack.fixtures.get(self.own.user_table or "", [])
        self.users = [str(u[self.own.user_key]) for u in users if str(u[self.own.user_key]) not in guard.users]
        self.intents = {i.name: i for i in pack.intents}
        self.free_text = _free_text_values(pack, self.own, guard)

    def sample(self, rng: random.Random, intent: str | None = None) -> Situation | None:
        """One situation (None when the drawn customer lacks the records the intent needs)."""
        intent = intent or rng.choice(list(self.intents))
        user = rng.choice(self.users)
        first = self._request(rng, intent, user)
        if first is None:
            return None
        requests = [first]
        if rng.random() < self.config.second_request:
            other = rng.choice([i for i in self.intents if i != intent])
            second = self._request(rng, other, user)
            if second is not None:
                requests.append(second)
        c = self.config
        evidence = [e for e in self.pack.manifest.dialogue.evidence if rng.random() < c.evidence]
        flags = [f for f in self.pack.manifest.dialogue.flags if rng.random() < c.flag]
        situation = Situation(user_id=user, identity_verified=rng.random() >= c.unverified,
                              evidence=evidence, flags=flags, requests=requests)
        return situation if self.guard.situation_allowed(situation) else None

    def _request(self, rng: random.Random, intent: str, user: str) -> dict[str, Any] | None:
        spec = self.intents[intent]
        slots: dict[str, Any] = {}
        for slot in _by_reference(self.pack, spec.slots):
            if not slot.required and rng.random() >= self.config.optional_slot:
                continue
            value = self._slot_value(rng, slot, user, slots)
            if value is None:
                if slot.required:
                    return None
                continue
            slots[slot.name] = value
        request: dict[str, Any] = {"intent": intent, "slots": slots}
        demand = self._demand(rng, intent)
        if demand is not None:
            request["demand"] = demand
            request["accept_alternatives"] = rng.random() < self.config.accept_alternatives
        return request

    def _slot_value(self, rng: random.Random, slot: Any, user: str, chosen: dict[str, Any]) -> Any:
        if slot.enum:
            return rng.choice(slot.enum)
        table = self.own.table_of_key.get(slot.name)
        if table is not None:
            spec = self.pack.schema.tables[table]
            if table in self.own.owned_tables:
                rows = self.own.rows_of.get((table, user), [])
            else:  # a catalogue table (promotions): shared by every customer
                rows = self.pack.fixtures.get(table, [])
            links = {c: chosen[col.references.split(".")[1]] for c, col in spec.columns.items()
                     if col.references and col.references.split(".")[1] in chosen and c != spec.primary_key}
            rows = [r for r in rows if all(str(r.get(c)) == str(v) for c, v in links.items())]
            rows = [r for r in rows if str(r[spec.primary_key]) not in self.guard.entity_ids]
            return str(rng.choice(rows)[spec.primary_key]) if rows else None
        if slot.type in ("integer", "number"):
            return rng.randint(1, 23) if slot.type == "integer" else float(rng.randint(1, 50))
        if slot.type == "boolean":
            return rng.random() < 0.5
        values = self.free_text.get(slot.name)
        return rng.choice(values) if values else None

    def _demand(self, rng: random.Random, intent: str) -> dict[str, Any] | None:
        if rng.random() >= self.config.demand:
            return None
        playbook = self.pack.playbooks.playbooks.get(intent)
        options = [o for step in (playbook.steps if playbook else []) if isinstance(step, ChooseStep)
                   for o in step.choose if isinstance(o, CallStep)]
        writes = [o.call for o in options if self.pack.tools.spec(o.call).kind == "write"
                  and not self.pack.tools.spec(o.call).ends_dialogue]
        if not writes:
            return None
        tool = rng.choice(sorted(set(writes)))
        args: dict[str, Any] = {}
        params = self.pack.tools.spec(tool).parameters.properties
        if "amount" in params and rng.random() < self.config.demand_amount:
            args["amount"] = rng.choice(self.config.amounts)
        return {"tool": tool, "args": args}


def _by_reference(pack: ScenarioPack, slots: list[Any]) -> list[Any]:
    """Slots whose table others reference first (the order before its item)."""
    tables = pack.schema.tables
    table_of = {spec.primary_key: name for name, spec in tables.items()}

    def depth(slot: Any) -> int:
        table = table_of.get(slot.name)
        if table is None:
            return 99
        refs = [c.references.split(".")[1] for c in tables[table].columns.values()
                if c.references and c.references.split(".")[1] in {s.name for s in slots}]
        return len(refs)

    return sorted(slots, key=depth)


def _free_text_values(pack: ScenarioPack, own: Ownership, guard: LeakGuard) -> dict[str, list[str]]:
    """Plausible values for free-text slots: the fixture column of that name (or the same last
    word, ``new_address`` -> ``delivery_address``), held-out customers' rows excluded."""
    out: dict[str, list[str]] = {}
    for intent in pack.intents:
        for slot in intent.slots:
            if slot.enum or slot.type != "string" or slot.name in own.table_of_key:
                continue
            suffix = slot.name.split("_")[-1]
            values: set[str] = set()
            for table, spec in pack.schema.tables.items():
                for column in spec.columns:
                    if column != slot.name and column.split("_")[-1] != suffix:
                        continue
                    for row in pack.fixtures.get(table, []):
                        owner = own.owner.get((table, str(row[spec.primary_key])))
                        if isinstance(row.get(column), str) and owner not in guard.users:
                            values.add(row[column])
            out[slot.name] = sorted(v for v in values if 2 <= len(v) <= 100)
    return out


# --------------------------------------------------------------------------- selection


def signature(result: OracleResult, situation: Situation) -> str:
    """The outcome class of a case: intents, writes done, rules that refused, demand or not."""
    denied = sorted({rid for d in result.denials for rid in d.rule_ids})
    demand = any(r.demand is not None for r in situation.requests)
    return "|".join([",".join(r.intent for r in situation.requests), ",".join(result.writes),
                     ",".join(denied), "ended" if result.state and result.state.ended else "",
                     "demand" if demand else ""])


def select_balanced(signed: list[tuple[str, Situation, str]], n: int, seed: int) -> list[tuple[str, Situation]]:
    """Up to ``n`` cases, an equal share per first intent; within an intent, outcome classes
    taken in turn, rarest first, so edge cases are kept before more of the common path."""
    rng = random.Random(seed)
    by_intent: dict[str, dict[str, list[tuple[str, Situation]]]] = defaultdict(lambda: defaultdict(list))
    seen: set[str] = set()
    for case_id, situation, sig in signed:
        key = situation_key(situation)
        if key in seen:
            continue
        seen.add(key)
        by_intent[situation.requests[0].intent][sig].append((case_id, situation))
    intents = sorted(by_intent)
    if not intents:
        return []
    chosen: list[tuple[str, Situation]] = []
    share = -(-n // len(intents))
    for intent in intents:
        classes = by_intent[intent]
        queues = [classes[s] for s in sorted(classes, key=lambda s: (len(classes[s]), s))]
        for queue in queues:
            rng.shuffle(queue)
        taken = 0
        while taken < share and any(queues):
            for queue in queues:
                if queue and taken < share:
                    chosen.append(queue.pop())
                    taken += 1
    return chosen[:n]


def candidate_cases(pack: ScenarioPack, count: int, seed: int, guard: LeakGuard,
                    config: SamplerConfig | None = None) -> list[tuple[str, Situation]]:
    """``count`` sampled situations (ids ``s<seed>-<n>``), intents taken in turn."""
    sampler = SituationSampler(pack, guard, config=config)
    rng = random.Random(seed)
    intents = [i.name for i in pack.intents]
    out: list[tuple[str, Situation]] = []
    attempts = 0
    while len(out) < count and attempts < count * 20:
        situation = sampler.sample(rng, intents[attempts % len(intents)])
        attempts += 1
        if situation is not None:
            out.append((f"s{seed}-{len(out):05d}", situation))
    return out


def train_task_cases(pack: ScenarioPack, guard: LeakGuard) -> list[tuple[str, Situation]]:
    """The train split's own situations (hand-made edge cases), if they touch nothing held out."""
    return [(t.id, t.situation) for t in pack.tasks
            if t.split == "train" and guard.situation_allowed(t.situation)]


def sign_cases(pack: ScenarioPack, cases: list[tuple[str, Situation]],
               oracle: Oracle | None = None) -> list[tuple[str, Situation, str]]:
    """Each case with its outcome signature (one oracle run each)."""
    oracle = oracle or Oracle(pack)
    return [(cid, s, signature(oracle.solve(s), s)) for cid, s in cases]
