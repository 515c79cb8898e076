"""The sessions database's URL, read once (``sqlite_path``) by the store's engine and by the
loop's default: which SQLite file a URL names, and which database the loop scores."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from wow_ray.agents.sessions import DEFAULT_DATABASE_URL, make_engine, sqlite_path
from wow_ray.cli.flywheel import _sessions_db


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("url", ["sqlite:///~/db/s.db", "sqlite+pysqlite:///~/db/s.db",
                                 "sqlite:///~/db/s.db?timeout=5"])
def test_a_sqlite_url_names_its_file_with_home_expanded(home, url):
    assert sqlite_path(url) == home / "db" / "s.db"


def test_absolute_in_memory_and_other_databases(tmp_path):
    assert sqlite_path(f"sqlite:///{tmp_path}/s.db") == tmp_path / "s.db"
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql://u@localhost/wow"):
        assert sqlite_path(url) is None, url


def test_the_engine_creates_the_file_the_url_names(home):
    engine = make_engine("sqlite+pysqlite:///~/new/folder/s.db?timeout=5")
    try:
        assert "sessions" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert (home / "new" / "folder" / "s.db").is_file()


def test_the_loop_scores_the_local_service_database_only_when_it_exists(home):
    assert _sessions_db("postgresql://u@localhost/wow") == "postgresql://u@localhost/wow"
    assert _sessions_db(None) is None
    make_engine(DEFAULT_DATABASE_URL).dispose()  # what the local service does when it starts
    assert sqlite_path(DEFAULT_DATABASE_URL) == home / ".wow_ray" / "sessions.db"
    assert _sessions_db(None) == DEFAULT_DATABASE_URL
