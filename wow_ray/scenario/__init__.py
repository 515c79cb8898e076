"""Scenario packs: a business's rules, tools, backend and tasks as data the engine loads.

Public surface (everything else is internal)::

    from wow_ray.scenario import load_pack, DialogueState, ToolCall, Oracle

    pack = load_pack("food_delivery")            # a built-in name or a folder path; validated
    env = pack.new_environment()                 # fresh backend copy for one episode
    state = DialogueState(user_id="U0007", identity_verified=True, evidence=["photo"])

    pack.tools.openai_schemas()                  # function-calling definitions for the LLM
    env.call("get_order", {"order_id": "O10042"}, state)      # ToolResult, JSON-able content
    decision = env.check(ToolCall(name="refund_partial",
                                  arguments={"order_id": "O10042", "amount": 12.5,
                                             "reason": "missing_item", "item_id": "I100421"}), state)
    decision.allowed, decision.rule_ids, decision.customer_reason
    env.obligations(state)                       # actions require-rules demand first
    env.state_hash()                             # order-independent digest of every table

    pack.rules.load_file("rules.yaml")           # hot reload: validated, swapped atomically,
    pack.rules.load_data(user_config["rules"])   # the old rules stay on any error
    pack.policy, pack.intents, pack.intent_schema(), pack.kb.search("refund time")

    Oracle(pack).solve(task)                     # gold actions + facts to communicate
    replay(pack, task.situation, gold_actions)   # a fresh backend after an action log:
                                                 # decisions, results, state_hash, diff

A pack is a folder (see ``spec.py`` for each file). ``wow-ray scenario validate PATH`` checks
one, ``wow-ray scenario new NAME`` writes a working skeleton to start from.
"""

from wow_ray.scenario.backend import Backend, BackendTemplate, state_diff
from wow_ray.scenario.binding import ToolResult, Toolset
from wow_ray.scenario.errors import (
    PackIssue,
    PackValidationError,
    RulesError,
    ScenarioError,
    ToolError,
)
from wow_ray.scenario.json_schemas import export_json_schemas, json_schemas
from wow_ray.scenario.loader import builtin_packs, load_pack, resolve_pack_path, validate_pack
from wow_ray.scenario.oracle import Oracle, OracleResult, check_gold, fill_gold
from wow_ray.scenario.pack import Environment, GateVerdict, ScenarioPack
from wow_ray.scenario.replay import Replay, ReplayResult, ReplayStep, apply_logged, replay
from wow_ray.scenario.rules import Decision, Obligation, RuleEngine
from wow_ray.scenario.scaffold import scaffold_pack
from wow_ray.scenario.spec import ClaimKind
from wow_ray.scenario.state import DialogueState, ToolCall
from wow_ray.scenario.tasks import GoldAction, IntentRequest, Situation, Task

__all__ = [
    "Backend",
    "BackendTemplate",
    "ClaimKind",
    "Decision",
    "DialogueState",
    "Environment",
    "GateVerdict",
    "GoldAction",
    "IntentRequest",
    "Obligation",
    "Oracle",
    "OracleResult",
    "PackIssue",
    "PackValidationError",
    "Replay",
    "ReplayResult",
    "ReplayStep",
    "RuleEngine",
    "RulesError",
    "ScenarioError",
    "ScenarioPack",
    "Situation",
    "Task",
    "ToolCall",
    "ToolError",
    "ToolResult",
    "Toolset",
    "builtin_packs",
    "apply_logged",
    "check_gold",
    "export_json_schemas",
    "fill_gold",
    "json_schemas",
    "load_pack",
    "replay",
    "resolve_pack_path",
    "scaffold_pack",
    "state_diff",
    "validate_pack",
]
