"""``wow-ray scenario ...`` and adding a business by writing files only."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from wow_ray.cli import app
from wow_ray.scenario import check_gold, json_schemas, load_pack, scaffold_pack
from wow_ray.scenario.json_schemas import SCHEMA_DIR

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["scenario", *args], catch_exceptions=False)


def test_validate_builtin_by_name():
    result = run("validate", "hotel_booking")
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output and "agree with the oracle" in result.output


def test_validate_reports_file_line_and_field(shop):
    rules = shop / "rules.yaml"
    rules.write_text(rules.read_text().replace("tools: [transfer_to_human]", "tools: [transfer_to_humans]"))
    result = run("validate", str(shop))
    assert result.exit_code == 1
    line = next(i for i, text in enumerate(rules.read_text().splitlines(), 1) if "transfer_to_humans" in text)
    assert f"rules.yaml:{line}: rules[3].tools[0]: unknown tool 'transfer_to_humans'" in result.output.replace("\n", "")


def test_new_then_validate(tmp_path):
    result = run("new", "bike_rental", "--dir", str(tmp_path), "--title", "City Bikes")
    assert result.exit_code == 0, result.output
    assert run("validate", str(tmp_path / "bike_rental")).exit_code == 0
    assert load_pack(tmp_path / "bike_rental").manifest.title == "City Bikes"
    assert "already exists" in str(runner.invoke(app, ["scenario", "new", "bike_rental", "--dir", str(tmp_path)]).exception)


def test_schema_list_check_gold_and_build_db(shop, tmp_path):
    rules_schema = json.loads(run("schema", "--kind", "rules").output)
    assert rules_schema["title"] == "WOW-Ray scenario rules" and "rules" in rules_schema["properties"]
    assert run("schema", "--out", str(tmp_path / "s")).exit_code == 0
    assert (tmp_path / "s" / "tasks.schema.json").is_file()
    assert "food_delivery" in run("list").output
    decision = json.loads(run("check", str(shop), "cancel_order", "--args", '{"order_id": "A1002"}',
                              "--state", '{"user_id": "C002", "identity_verified": true}').output)
    assert decision["rule_ids"] == ["CAN-002"] and not decision["allowed"]
    tasks = json.loads((shop / "tasks.json").read_text())
    for task in tasks:
        task["evaluation_criteria"]["actions"] = []
    (shop / "tasks.json").write_text(json.dumps(tasks))
    assert "would update 2 of 2" in run("gold", str(shop)).output
    assert "updated 2 of 2" in run("gold", str(shop), "--write").output
    assert check_gold(load_pack(shop)) == []
    assert run("build-db", str(shop), str(tmp_path / "shop.sqlite")).exit_code == 0


def test_shipped_json_schemas_are_current():
    for kind, schema in json_schemas().items():
        shipped = json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text())
        assert shipped == schema, f"run: wow-ray scenario schema  (then commit {kind}.schema.json)"


def test_json_schemas_accept_the_builtin_files():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    from wow_ray.scenario import resolve_pack_path

    schemas = json_schemas()
    for pack in ("food_delivery", "hotel_booking"):
        root = resolve_pack_path(pack)
        for kind, rel in (("pack", "pack.yaml"), ("rules", "rules.yaml"), ("tools", "tools.yaml"), ("intents", "intents.yaml"),
                          ("playbooks", "playbooks.yaml"), ("fixtures-schema", "fixtures/schema.yaml")):
            data = json.loads(json.dumps(yaml.safe_load((root / rel).read_text()), default=str))
            jsonschema.validate(data, schemas[kind])
        jsonschema.validate(json.loads((root / "tasks.json").read_text()), schemas["tasks"])


def test_a_business_adds_rules_and_tools_by_writing_files(tmp_path):
    """A new tool and a rule about it, in the pack's files only: the engine picks them up."""
    pack_dir = scaffold_pack("bakery", tmp_path)
    (pack_dir / "tools.yaml").write_text((pack_dir / "tools.yaml").read_text() + """
  - name: add_gift_note
    kind: write
    description: Attach a gift note to a pending order.
    parameters:
      type: object
      properties:
        order_id: {type: string}
        gold_only: {type: boolean}
      required: [order_id]
""")
    (pack_dir / "tools.py").write_text((pack_dir / "tools.py").read_text() + """

def add_gift_note(db: Backend, order_id: str, gold_only: bool | None = None) -> dict:
    return {"order_id": db.require("orders", order_id, "order")["order_id"], "note": "added"}
""")
    (pack_dir / "rules.yaml").write_text((pack_dir / "rules.yaml").read_text() + """
  - id: GIFT-001
    title: Gold customers may add gift notes to pending orders
    effect: allow
    tools: [add_gift_note]
    when: [customer.tier == 'gold', order.status == 'pending']
    priority: 50
  - id: GIFT-OWN
    title: Gift notes only on the customer's own orders (the ownership proof asks for it)
    effect: forbid
    tools: [add_gift_note]
    when: [order.customer_id != dialogue.user_id]
    priority: 100
""")
    pack = load_pack(pack_dir)
    from wow_ray.scenario import DialogueState, ToolCall

    env = pack.new_environment()
    call = ToolCall(name="add_gift_note", arguments={"order_id": "A1001"})
    assert not env.check(call, DialogueState(user_id="C001", identity_verified=True)).allowed  # regular customer
    env.backend.update("customers", "C001", tier="gold")
    assert env.check(call, DialogueState(user_id="C001", identity_verified=True)).rule_ids == ("GIFT-001",)
