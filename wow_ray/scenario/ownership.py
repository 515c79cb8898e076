"""Proof that no write can act on another customer's records.

A pack names, per entity, the column that holds its owner's account id (``owner: user_id`` in
``pack.yaml``). Then every write tool, for every argument by which it can name an owned record
(an entity looked up by ``args.<name>``), must be covered by a forbid rule whose one condition
is that the record's owner is not the customer in the dialogue (``order.user_id !=
dialogue.user_id``, or ``args.user_id != dialogue.user_id`` when the argument *is* the owner id),
in force on every day and at a priority no allow rule of that tool outranks. A write that needs
no such rule says why in ``tools.yaml`` (``ownership_exempt: <reason>``).

Found the hard way: FD-GEN-002 covered the order writes but not ``issue_coupon``, which takes an
``order_id`` too, so a coupon for the caller on someone else's late order was allowed.
"""

from __future__ import annotations

from wow_ray.scenario.errors import PackIssue
from wow_ray.scenario.rules import CompiledRules
from wow_ray.scenario.spec import PackManifest, ToolSpec

CUSTOMER = "dialogue.user_id"


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _owner_conditions(entity: str, owner: str, argument: str) -> set[str]:
    """The conditions that say 'the record named by ``argument`` is not the customer's'."""
    sides = [f"{entity}.{owner}"] + ([f"args.{argument}"] if argument == owner else [])
    return {c for side in sides for c in (f"{side}!={CUSTOMER}", f"{CUSTOMER}!={side}")}


def ownership_issues(manifest: PackManifest, tools: list[ToolSpec],
                     rules: CompiledRules) -> list[PackIssue]:
    """One issue per (write tool, owned argument) no ownership rule covers."""
    when = {r.id: [_squeeze(c) for c in r.when] for r in rules.data.rules}
    issues = []
    for tool in tools:
        if tool.kind != "write" or tool.ownership_exempt:
            continue
        governing = [r for r in rules.by_tool.get(tool.name, ())]
        top_allow = max((r.priority for r in governing if r.effect == "allow"), default=-1)
        for entity, spec in manifest.entities.items():
            if spec.owner is None:
                continue
            for lookup in spec.lookup:
                argument = lookup.removeprefix("args.")
                if lookup == argument or argument not in tool.parameters.properties:
                    continue
                wanted = _owner_conditions(entity, spec.owner, argument)
                covered = any(
                    r.effect == "forbid" and r.priority >= top_allow
                    and r.effective_from is None and r.effective_until is None
                    and len(when[r.id]) == 1 and when[r.id][0] in wanted
                    for r in governing
                )
                if not covered:
                    issues.append(PackIssue(
                        "rules.yaml",
                        f"write tool '{tool.name}' takes '{argument}' (a {entity}, owned through "
                        f"{entity}.{spec.owner}) but no forbid rule with the single condition "
                        f"'{entity}.{spec.owner} != {CUSTOMER}' covers it at a priority no allow "
                        f"rule outranks; add one, or say why not with 'ownership_exempt' in "
                        f"tools.yaml", "rules"))
    return issues
