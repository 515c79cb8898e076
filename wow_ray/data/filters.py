"""Quality filters: a sample is kept only if the service could have produced it correctly.

Per sample, in order (the first that fails names the removal):

- ``schema``: the prompt re-renders from the stored input exactly (so it is the run-time prompt
  of this ``PROMPT_VERSION``); a JSON target parses and validates against the agent's
  ``response_format`` schema and output model; a reply passes the response agent's own
  validator (quotes what it must, every number and id grounded, asks when it clarifies);
- ``rules``: every action in the sample, the prior ones included, passes the rule engine at
  its point in the dialogue (replayed on a fresh backend from the situation);
- ``length``: the whole sample fits the training context (estimated tokens), the target is
  not empty and a reply not longer than the service allows;
- ``language``: customer and agent text is English (Latin letters, English function words);
- ``held_out``: no held-out customer, record or task text appears anywhere in it.

Across samples, ``near_duplicate`` removes a sample whose MinHash (word 3-grams, digits
folded, so texts differing only in ids and amounts collide) is too close to an earlier kept
sample of the same agent (``datasketch`` LSH, then the estimated Jaccard confirms).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import jsonschema
import numpy as np
from datasketch import MinHash, MinHashLSH

from wow_ray.agents.prompts import PROMPTS
from wow_ray.data.formats import ChatSample, FilterExample, FilterReport, FilterStat
from wow_ray.data.served_agents import ServedAgents
from wow_ray.data.situations import LeakGuard
from wow_ray.scenario import ScenarioPack, Situation, ToolCall, replay

FILTERS = {
    "schema": "prompt re-renders exactly; target valid for the agent's schema; replies pass the service's validator",
    "rules": "every action, prior ones included, passes the rule engine at its point in the dialogue",
    "length": "fits the training context; target non-empty; replies within the service's limit",
    "language": "customer and agent text is English",
    "held_out": "no held-out customer, record or task text appears in the sample",
    "near_duplicate": "not a near-copy (MinHash Jaccard) of a kept sample of the same agent",
}
CHARS_PER_TOKEN = 3.0  # SmolLM2 with its chat template: 3.25 chars per token measured on a build
MAX_REPLY_CHARS = 700
SCHEME = "affine32"  # datasketch 2.x: signatures are only comparable within one scheme
_DIGITS = re.compile(r"[0-9]+")
_WORD = re.compile(r"[a-z0-9]+")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_ENGLISH = {"the", "a", "an", "is", "are", "was", "my", "i", "you", "your", "it", "to", "of", "and",
            "for", "in", "on", "with", "this", "that", "can", "please", "me", "what", "we", "be"}


@dataclass
class FilterConfig:
    max_tokens: int = 2048
    dedup_threshold: float = 0.9
    num_perm: int = 64


class SampleChecker:
    """The per-sample filters for one pack (holds the pack, the runtime and the leak guard)."""

    def __init__(self, pack: ScenarioPack, guard: LeakGuard, config: FilterConfig | None = None) -> None:
        self.pack = pack
        self.guard = guard
        self.config = config or FilterConfig()
        self.agents = ServedAgents(pack)
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    def check(self, sample: ChatSample) -> tuple[str, str]:
        """("", "") when the sample passes, else (filter name, reason)."""
        for name, fn in (("schema", self.schema), ("rules", self.rules), ("length", self.length),
                         ("language", self.language), ("held_out", self.held_out)):
            problem = fn(sample)
            if problem:
                return name, problem
        return "", ""

    def schema(self, sample: ChatSample) -> str | None:
        spec = PROMPTS[sample.meta.agent]
        try:
            inp = spec.input_model.model_validate(sample.meta.input)
        except Exception as exc:  # noqa: BLE001 - any invalid input is a schema failure
            return f"input does not validate: {str(exc)[:160]}"
        if [m.model_dump() for m in sample.prompt] != spec.messages(inp):
            return "prompt differs from what the service renders for this input"
        if spec.output_model is None:
            m = sample.meta.input
            return self.agents.reply_problem(sample.target, m["kind"], m["message"], m["facts"],
                                         m["must_say"], m["ask_for"])
        try:
            data = json.loads(sample.target)
            self._validator(spec.schema(inp)).validate(data)
        except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
            return f"target is not valid for the {sample.meta.agent} schema: {str(exc).splitlines()[0][:160]}"
        return None

    def _validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        # Few distinct schemas (one per agent and candidate set): compile each once, and skip
        # re-checking the schema itself on every sample (that is most of jsonschema's time).
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            self._validators[key] = jsonschema.Draft202012Validator(schema)
        return self._validators[key]

    def rules(self, sample: ChatSample) -> str | None:
        check = sample.meta.check
        if check is None:
            return None
        situation = Situation.model_validate(check.situation)
        calls = [ToolCall.model_validate(a) for a in [*check.prior, *check.actions]]
        ends = {t.spec.name for t in self.pack.tools if t.spec.ends_dialogue}
        result = replay(self.pack, situation, calls, diff=False)
        for call, decision, outcome in zip(calls, result.decisions, result.results, strict=True):
            if not decision.allowed:
                return f"{call.name} denied by {', '.join(decision.rule_ids) or 'default'}"
            if not outcome.ok and call.name not in ends:
                return f"{call.name} fails: {outcome.error}"
        return None

    def length(self, sample: ChatSample) -> str | None:
        chars = sum(len(m.content) for m in sample.messages)
        tokens = int(chars / CHARS_PER_TOKEN) + 4 * len(sample.messages)
        if tokens > self.config.max_tokens:
            return f"about {tokens} tokens, over {self.config.max_tokens}"
        if sample.meta.agent == "response" and len(sample.target) > MAX_REPLY_CHARS:
            return f"reply of {len(sample.target)} characters, over {MAX_REPLY_CHARS}"
        return None

    def language(self, sample: ChatSample) -> str | None:
        for text in free_texts(sample):
            problem = english_problem(text)
            if problem:
                return f"{problem}: {text[:80]!r}"
        return None

    def held_out(self, sample: ChatSample) -> str | None:
        found = self.guard.leaks_in("\n".join(m.content for m in sample.messages))
        return f"held-out content: {', '.join(found[:3])}" if found else None


def free_texts(sample: ChatSample) -> list[str]:
    """What customers and agents wrote in the sample (not the prompt's own instructions)."""
    inp = sample.meta.input
    texts = [inp.get("message", "")] if isinstance(inp.get("message"), str) else []
    if sample.meta.agent == "response":
        texts.append(sample.target)
    return [t for t in texts if t.strip()]


def english_problem(text: str) -> str | None:
    """Why ``text`` does not look like English (None: it does)."""
    letters = _LETTER.findall(text)
    if letters:
        latin = sum(1 for ch in letters if ch.isascii())
        if latin / len(letters) < 0.95:
            return "not in Latin script"
    words = [w for w in _WORD.findall(text.lower()) if w.isalpha()]  # ids, amounts, dates aside
    if len(words) >= 12 and not _ENGLISH & set(words):
        return "no English function words"
    return None


# --------------------------------------------------------------------------- near duplicates


def distinctive_text(sample: ChatSample) -> str:
    """Everything but the system prompt (shared by all samples of an agent), digits folded."""
    body = " ".join(m.content for m in sample.messages if m.role != "system")
    return _DIGITS.sub("0", body.lower())


def minhash_signature(text: str, num_perm: int = 64) -> np.ndarray:
    words = _WORD.findall(text)
    shingles = {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}
    m = MinHash(num_perm=num_perm, seed=1, scheme=SCHEME)
    m.update_batch([s.encode() for s in shingles])
    return m.hashvalues.astype(np.uint64)


def near_duplicates(rows: list[dict[str, Any]], threshold: float, num_perm: int) -> dict[str, str]:
    """id -> id of the kept sample it repeats. ``rows``: id, agent, minhash (bytes), in the
    order of preference (earlier rows are kept)."""
    lsh: dict[str, MinHashLSH] = defaultdict(lambda: MinHashLSH(threshold=threshold, num_perm=num_perm))
    kept: dict[str, MinHash] = {}
    dups: dict[str, str] = {}
    for row in rows:
        m = MinHash(num_perm=num_perm, seed=1, scheme=SCHEME,
                    hashvalues=np.frombuffer(row["minhash"], dtype=np.uint64).copy())
        index = lsh[row["agent"]]
        twin = next((k for k in index.query(m) if kept[k].jaccard(m) >= threshold), None)
        if twin is not None:
            dups[row["id"]] = twin
            continue
        index.insert(row["id"], m)
        kept[row["id"]] = m
    return dups


# --------------------------------------------------------------------------- the report


def build_report(checked: int, removals: dict[str, list[dict[str, Any]]], examples: int = 3) -> FilterReport:
    """``removals``: filter -> rows removed (id, agent, reason, text), in check order."""
    stats, shown = [], {}
    for name, description in FILTERS.items():
        rows = removals.get(name, [])
        per_agent: dict[str, int] = defaultdict(int)
        for row in rows:
            per_agent[row["agent"]] += 1
        stats.append(FilterStat(name=name, description=description, checked=checked,
                                removed=len(rows), removed_by_agent=dict(sorted(per_agent.items()))))
        checked -= len(rows)
        if rows:
            shown[name] = [FilterExample(id=r["id"], agent=r["agent"], reason=r["reason"][:300],
                                         text=r["text"][:400]) for r in rows[:examples]]
    return FilterReport(stats=stats, examples=shown)


def report_markdown(report: FilterReport, title: str) -> str:
    lines = [f"# {title}", "", "| filter | what it requires | checked | removed |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {s.name} | {s.description} | {s.checked} | {s.removed} |" for s in report.stats]
    for name, examples in report.examples.items():
        lines += ["", f"## Removed by {name}", ""]
        for ex in examples:
            lines += [f"- `{ex.id}` ({ex.agent}): {ex.reason}", f"  > {ex.text[:300]}"]
    return "\n".join(lines) + "\n"
