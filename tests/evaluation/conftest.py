from __future__ import annotations

import pytest

from wow_ray.scenario import load_pack


@pytest.fixture(scope="session")
def food_pack():
    return load_pack("food_delivery")
