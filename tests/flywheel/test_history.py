"""The loop's history rows (one reader for the CLI and the console), its PNG chart, and the
console's SVG chart escaping what it shows."""

from __future__ import annotations

from tests.flywheel.test_loop import FakeStages, registry  # noqa: F401 - the fixture
from wow_ray.flywheel import Flywheel
from wow_ray.flywheel.history import loop_history, write_history_chart


def test_each_turn_becomes_one_row(registry, tmp_path):  # noqa: F811
    Flywheel(registry, "food_delivery", FakeStages(registry, tmp_path, better=False)).run(2)
    turns = loop_history(registry, "food_delivery")
    assert [t.turn for t in turns] == [1, 2]
    assert all(t.promoted is False and t.decision.startswith("rejected: ") for t in turns)
    assert turns[0].production_success is not None and turns[0].candidate
    assert "food_delivery-failures:v1 x2.0" in turns[0].datasets
    assert loop_history(registry, "hotel_booking") == []
    png = write_history_chart(turns, tmp_path / "out" / "loop.png", "loop")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_the_cli_writes_the_chart(registry, tmp_path, monkeypatch):  # noqa: F811
    from typer.testing import CliRunner

    from wow_ray.cli import app

    Flywheel(registry, "food_delivery", FakeStages(registry, tmp_path, better=False)).run()
    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", registry.storage.root)
    chart = tmp_path / "history.png"
    out = CliRunner().invoke(app, ["flywheel", "history", "--chart", str(chart)],
                             env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "rejected" in out.output and chart.read_bytes()[:4] == b"\x89PNG"


def test_the_svg_chart_escapes_its_labels():
    from wow_ray.serving.console.charts import line_chart

    svg = str(line_chart(["<script>alert(1)</script>", "b"], {"success": [0.5, None]},
                         'a "title" <b>'))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg
    assert svg.count("<circle") == 1  # None is a gap, not a zero
