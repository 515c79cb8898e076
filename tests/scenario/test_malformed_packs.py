"""A broken pack is rejected with an error naming the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wow_ray.scenario import PackIssue, PackValidationError, load_pack


def issues_of(path: Path) -> list[PackIssue]:
    with pytest.raises(PackValidationError) as info:
        load_pack(path)
    return info.value.issues


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


def test_scaffold_is_valid(shop):
    assert load_pack(shop).name == "shop"


def test_bad_yaml_names_file_and_line(shop, edit):
    edit("rules.yaml", "    priority: 60\n", "    priority: [60\n")
    [issue] = issues_of(shop)
    assert issue.file == "rules.yaml"
    assert "invalid YAML" in issue.message
    assert issue.line is not None and abs(issue.line - line_of(shop / "rules.yaml", "priority: [60")) <= 1


def test_rule_naming_unknown_tool(shop, edit):
    edit("rules.yaml", "tools: [cancel_order]\n    when:\n      - order.status == 'pending'",
         "tools: [cancel_ordr]\n    when:\n      - order.status == 'pending'")
    [issue] = issues_of(shop)
    assert (issue.file, issue.field) == ("rules.yaml", "rules[1].tools[0]")
    assert "unknown tool 'cancel_ordr'" in issue.message and "cancel_order" in issue.message
    assert issue.line == line_of(shop / "rules.yaml", "cancel_ordr")


def test_rule_naming_unknown_field(shop, edit):
    edit("rules.yaml", "- order.status == 'shipped'", "- order.stauts == 'shipped'")
    [issue] = issues_of(shop)
    assert issue.field == "rules[2].when[0]"
    assert "unknown field 'order.stauts'" in issue.message and "status" in issue.message
    assert issue.line == line_of(shop / "rules.yaml", "order.stauts")


def test_rule_comparing_enum_with_unknown_value(shop, edit):
    edit("rules.yaml", "- order.status == 'shipped'", "- order.status == 'shiped'")
    [issue] = issues_of(shop)
    assert "order.status has no value 'shiped'" in issue.message


def test_rule_reading_a_parameter_its_tool_lacks(shop, edit):
    edit("rules.yaml", "- order.status == 'shipped'", "- args.amount > 10")
    [issue] = issues_of(shop)
    assert "unknown field 'args.amount'" in issue.message and "cancel_order" in issue.message


def test_rule_schema_violation(shop, edit):
    edit("rules.yaml", "priority: 60", "priority: high")
    [issue] = issues_of(shop)
    assert issue.field == "rules[2].priority"
    assert "integer" in issue.message
    assert issue.line == line_of(shop / "rules.yaml", "priority: high")


def test_rule_with_unknown_key(shop, edit):
    edit("rules.yaml", "priority: 60", "priority: 60\n    effect_typo: allow")
    [issue] = issues_of(shop)
    assert (issue.field, issue.message) == ("rules[2].effect_typo", "unknown field")


def test_duplicate_rule_ids(shop, edit):
    edit("rules.yaml", "id: CAN-002", "id: CAN-001")
    [issue] = issues_of(shop)
    assert issue.field == "rules[2].id" and "duplicate rule id 'CAN-001'" in issue.message


def test_unknown_params_name(shop, edit):
    edit("rules.yaml", "params.cancel_window_hours", "params.cancel_window")
    [issue] = issues_of(shop)
    assert "params.cancel_window" in issue.message and "cancel_window_hours" in issue.message


def test_forbidden_expression_syntax(shop, edit):
    edit("rules.yaml", "- order.status == 'shipped'", "- order.status.__class__.mro()")
    [issue] = issues_of(shop)
    assert "not allowed" in issue.message or "unknown function" in issue.message


def test_duplicate_tool_names(shop, edit):
    edit("tools.yaml", "  - name: cancel_order", "  - name: get_order")
    messages = [i.message for i in issues_of(shop)]
    assert any("duplicate tool 'get_order'" in m for m in messages)


def test_tool_without_function(shop, edit):
    edit("tools.py", "def cancel_order(", "def cancel_the_order(")
    [issue] = issues_of(shop)
    assert issue.file == "tools.yaml" and "no function 'cancel_order'" in issue.message
    assert issue.line == line_of(shop / "tools.yaml", "name: cancel_order")


def test_tool_signature_mismatch(shop, edit):
    edit("tools.py", "def cancel_order(db: Backend, order_id: str)", "def cancel_order(db: Backend, order: str)")
    [issue] = issues_of(shop)
    assert issue.file == "tools.py" and "missing parameters ['order_id']" in issue.message
    assert issue.line == line_of(shop / "tools.py", "def cancel_order(")


def test_tool_parameter_schema_violation(shop, edit):
    edit("tools.yaml", 'order_id: {type: string, description: "The order to cancel."}',
         'order_id: {type: text, description: "The order to cancel."}')
    [issue] = issues_of(shop)
    assert issue.file == "tools.yaml" and issue.field == "tools[1].parameters.properties.order_id.type"


def test_duplicate_intents(shop, edit):
    edit("intents.yaml", "  - name: ask_for_human", "  - name: cancel_order")
    messages = [i.message for i in issues_of(shop)]
    assert any("duplicate intent 'cancel_order'" in m for m in messages)


def test_pack_manifest_unknown_key(shop, edit):
    edit("pack.yaml", "currency: USD", "currency: USD\ncurency: EUR")
    [issue] = issues_of(shop)
    assert (issue.file, issue.field, issue.message) == ("pack.yaml", "curency", "unknown field")
    assert issue.line == line_of(shop / "pack.yaml", "curency")


def test_entity_on_unknown_table(shop, edit):
    edit("pack.yaml", "table: customers", "table: clients")
    issue = issues_of(shop)[0]
    assert issue.field == "entities.customer.table" and "unknown table 'clients'" in issue.message


def test_derived_field_cycle(shop, edit):
    edit("pack.yaml", "hours_since_placed: hours_between(order.placed_at, now)",
         "hours_since_placed: order.hours_since_placed + 1")
    messages = [i.message for i in issues_of(shop)]
    assert "derived field depends on itself" in messages


def test_fixture_type_violation(shop):
    path = shop / "fixtures" / "orders.json"
    path.write_text(path.read_text().replace('"total": 18.0', '"total": "eighteen"'))
    [issue] = issues_of(shop)
    assert (issue.file, issue.field, issue.message) == ("fixtures/orders.json", "[1].total", "must be a number")
    assert issue.line == 3


def test_fixture_enum_and_foreign_key(shop):
    path = shop / "fixtures" / "orders.json"
    rows = json.loads(path.read_text())
    rows[0]["status"] = "lost"
    path.write_text(json.dumps(rows, indent=1))
    assert "'lost' is not one of" in issues_of(shop)[0].message
    rows[0]["status"] = "pending"
    rows[0]["customer_id"] = "C999"
    path.write_text(json.dumps(rows, indent=1))
    [issue] = issues_of(shop)
    assert issue.field == "[0].customer_id" and "'C999' does not exist in customers.customer_id" in issue.message


def test_fixture_duplicate_primary_key(shop):
    path = shop / "fixtures" / "customers.json"
    path.write_text(path.read_text().replace('"C002"', '"C001"', 1))
    messages = [i.message for i in issues_of(shop)]
    assert any("duplicate primary key 'C001'" in m for m in messages)


def test_tasks_invalid_json_names_line(shop):
    path = shop / "tasks.json"
    lines = path.read_text().splitlines()
    lines[5] = lines[5] + ","  # a trailing comma
    path.write_text("\n".join(lines))
    [issue] = issues_of(shop)
    assert issue.file == "tasks.json" and "invalid JSON" in issue.message and issue.line is not None


def test_task_schema_violation_and_unknown_intent(shop):
    path = shop / "tasks.json"
    tasks = json.loads(path.read_text())
    tasks[0]["split"] = "validation"
    tasks[1]["situation"]["requests"][0]["intent"] = "refund_order"
    path.write_text(json.dumps(tasks, indent=2))
    issue = issues_of(shop)[0]
    assert (issue.file, issue.field) == ("tasks.json", "tasks[0].split")
    assert issue.line == line_of(path, '"validation"')
    tasks[0]["split"] = "train"
    path.write_text(json.dumps(tasks, indent=2))
    [issue] = issues_of(shop)
    assert issue.field == "tasks[1].situation.requests[0].intent" and "unknown intent 'refund_order'" in issue.message


def test_duplicate_task_ids(shop):
    path = shop / "tasks.json"
    tasks = json.loads(path.read_text())
    tasks[1]["id"] = tasks[0]["id"]
    path.write_text(json.dumps(tasks, indent=2))
    [issue] = issues_of(shop)
    assert "duplicate task id" in issue.message and issue.field == "tasks[1].id"


def test_playbook_errors(shop, edit):
    edit("playbooks.yaml", "      - call: get_order", "      - call: fetch_order")
    edit("playbooks.yaml", "args: {customer_id: \"=dialogue.user_id\", reason: customer_request}",
         "args: {customer_id: \"=dialogue.user_id\", reason: customer_request, urgent: true}")
    issues = issues_of(shop)
    fields = {i.field: i.message for i in issues}
    assert "unknown tool 'fetch_order'" in fields["playbooks.cancel_order.steps[0].call"]
    assert "has no parameter 'urgent'" in fields["playbooks.ask_for_human.steps[0].args.urgent"]


def test_playbook_unknown_rule_in_when_denied_by(shop, edit):
    edit("playbooks.yaml", '            communicate: ["=money(order.total)"]',
         '            communicate: ["=money(order.total)"]\n        otherwise:\n          - when_denied_by: [CAN-404]\n            communicate: ["no"]')
    [issue] = issues_of(shop)
    assert "unknown rule id 'CAN-404'" in issue.message


def test_missing_playbook_for_intent(shop, edit):
    edit("playbooks.yaml", "  ask_for_human:", "  ask_for_humans:")
    messages = [i.message for i in issues_of(shop)]
    assert "no playbook for intent 'ask_for_human'" in messages


def test_kb_bad_front_matter(shop):
    (shop / "kb" / "broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    [issue] = issues_of(shop)
    assert issue.file == "kb/broken.md" and "front matter" in issue.message


def test_missing_file(shop):
    (shop / "policy.md").unlink()
    [issue] = issues_of(shop)
    assert (issue.file, issue.message) == ("policy.md", "file is missing")


def test_all_problems_reported_at_once(shop, edit):
    edit("rules.yaml", "priority: 60", "priority: high")
    edit("intents.yaml", "  - name: ask_for_human", "  - name: cancel_order")
    files = {i.file for i in issues_of(shop)}
    assert {"rules.yaml", "intents.yaml"} <= files
