"""The ``wow-ray`` command: help, model registry commands, errors as one clear line."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from wow_ray.cli import app
from wow_ray.registry import EntryKind, Registry

runner = CliRunner()


@pytest.fixture
def storage(tmp_path, monkeypatch):
    root = tmp_path / "storage"
    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", str(root))
    return root


def model_folder(path):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (path / "model.safetensors").write_bytes(b"\x00" * 128)
    return path


def test_help_lists_every_stage_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "chat", "demo", "model", "scenario"):
        assert command in result.output


def test_model_register_list_and_verify(storage, tmp_path):
    folder = model_folder(tmp_path / "m")
    result = runner.invoke(app, ["model", "register", "my-model", str(folder)])
    assert result.exit_code == 0, result.output
    assert "my-model:v1" in result.output

    listed = runner.invoke(app, ["model", "list"], env={"COLUMNS": "200"})
    assert "my-model:v1" in listed.output

    ok = runner.invoke(app, ["model", "verify", "my-model"])
    assert ok.exit_code == 0 and "2 files match" in ok.output


def test_a_corrupted_model_fails_verify_with_one_clear_line(storage, tmp_path):
    entry = Registry(str(storage)).register(
        EntryKind.MODEL, "m", model_folder(tmp_path / "m"), source="t"
    )
    (storage / entry.path / "model.safetensors").write_bytes(b"\x01" * 128)
    result = subprocess.run(
        [sys.executable, "-m", "wow_ray.cli", "model", "verify", "m"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "WOW_RAY_STORAGE_PATH": str(storage)},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: model m:v1")
    assert "model.safetensors" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_fails_at_start_naming_the_field(tmp_path):
    config = tmp_path / "wow.yaml"
    config.write_text("engine:\n  max_model_len: 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "wow_ray.cli", "--config", str(config), "model", "list"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "engine.max_model_len" in result.stderr and str(config) in result.stderr


@pytest.mark.slow
def test_chat_sends_one_message_and_prints_the_streamed_reply(served_llm):
    result = runner.invoke(app, ["chat", "--url", served_llm, "-m", "Hello!", "--max-tokens", "8"])
    assert result.exit_code == 0, result.output
    assert result.output.strip()


def test_chat_reports_an_unreachable_endpoint(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "wow_ray.cli", "chat", "--url", "http://127.0.0.1:9", "-m", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("typed", ["", "\n\n/quit\n", "/exit\nnever sent\n"])
def test_interactive_chat_leaves_at_end_of_input_or_quit_without_sending(typed):
    # nothing listens on port 9: a message sent would fail with exit code 1
    result = subprocess.run(
        [sys.executable, "-m", "wow_ray.cli", "chat", "--url", "http://127.0.0.1:9"],
        input=typed, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "chatting with" in result.stderr


def test_dialogue_chat_prints_the_streamed_turn_and_returns_its_done_event(capsys):
    import httpx

    from wow_ray.agents.events import DeltaEvent, DoneEvent, ResetEvent, StepEvent, to_sse
    from wow_ray.cli.dialogue import SessionClient, print_turn

    done = DoneEvent(session_id="s1", turn=0, reply="Your coupon is ready.", status="handed_off",
                     ticket_id="T-7", latency_s=1.0)
    events = [StepEvent(agent="understanding", summary={"intent": "late_delivery"}),
              DeltaEvent(text="draft"), ResetEvent(), DeltaEvent(text="Your coupon "),
              DeltaEvent(text="is ready."), done]

    def gateway(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/sessions/s1/messages" and request.url.params["stream"] == "true"
        return httpx.Response(200, text="".join(to_sse(e) for e in events),
                              headers={"content-type": "text/event-stream"})

    client = SessionClient("http://gateway.test")
    client.http = httpx.Client(base_url="http://gateway.test", transport=httpx.MockTransport(gateway))
    assert print_turn(client, "s1", "late again", []) == done
    printed = capsys.readouterr()
    assert "draft (draft withdrawn)" in printed.out and "Your coupon is ready." in printed.out
    assert "understanding" in printed.err and "ticket T-7" in printed.err


def test_model_alias_set_show_history_and_rollback(storage, tmp_path):
    registry = Registry(str(storage))
    for _ in range(2):
        registry.register(EntryKind.MODEL, "m", model_folder(tmp_path / f"m{_}"), source="t")
    wide = {"COLUMNS": "200"}
    moved = runner.invoke(app, ["model", "alias", "set", "m@production", "v1", "--kind", "model",
                                "--by", "alice", "--reason", "first"])
    assert moved.exit_code == 0, moved.output
    runner.invoke(app, ["model", "alias", "set", "m@production", "2", "--kind", "model",
                        "--report", "eval:v3"])
    shown = runner.invoke(app, ["model", "alias", "show"], env=wide)
    assert "m@production" in shown.output and "m:v2" in shown.output and "eval:v3" in shown.output
    back = runner.invoke(app, ["model", "alias", "rollback", "m@production", "--kind", "model"])
    assert back.exit_code == 0, back.output
    assert registry.get(EntryKind.MODEL, "m@production").version == 1
    history = runner.invoke(app, ["model", "alias", "history", "m@production", "--kind", "model"],
                            env=wide)
    assert history.output.count("v1") >= 2 and "alice" in history.output
    assert "rollback of #2" in history.output
    bad = runner.invoke(app, ["model", "alias", "set", "m", "v1", "--kind", "model"])
    assert bad.exit_code != 0
