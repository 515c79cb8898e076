"""The self-evolving loop: failures become data, data a fine-tuned candidate, and only a better
candidate is served (its adapters' ``production`` aliases moved by the gate)::

    from wow_ray.flywheel import Flywheel, RealStages
    Flywheel(registry, "food_delivery", RealStages(...)).run(turns=1)
"""

from wow_ray.flywheel.gate import WORSE_RULES, GateDecision, decide, per_task, sign_test
from wow_ray.flywheel.loop import (
    STEPS,
    Flywheel,
    FlywheelBusy,
    FlywheelOptions,
    Stages,
    StepRecord,
    numbers,
)

__all__ = [
    "STEPS",
    "WORSE_RULES",
    "Flywheel",
    "FlywheelBusy",
    "FlywheelOptions",
    "GateDecision",
    "Stages",
    "StepRecord",
    "decide",
    "numbers",
    "per_task",
    "sign_test",
]
