"""Fixtures for scenario tests: the built-in packs (loaded once) and throw-away copies of the
scaffold pack that a test may break on purpose."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wow_ray.scenario import ScenarioPack, load_pack, scaffold_pack


@pytest.fixture(scope="session")
def food() -> ScenarioPack:
    return load_pack("food_delivery")


@pytest.fixture(scope="session")
def hotel() -> ScenarioPack:
    return load_pack("hotel_booking")


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A fresh, valid pack folder (the scaffold) to edit."""
    return scaffold_pack("shop", tmp_path)


@pytest.fixture
def edit(shop: Path) -> Callable[[str, str, str], None]:
    """edit(file, old, new): replace text in one file of the shop pack (must occur)."""

    def replace(rel: str, old: str, new: str) -> None:
        path = shop / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))

    return replace
