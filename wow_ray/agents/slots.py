"""Slot values the text itself proves: ids found by their shape, enum words, grounding checks.

A weak model invents ids and paraphrases values, so the understanding agent trusts a slot
value only when the conversation shows it. The shape of each id slot is learnt from the
pack's own fixtures (every ``order_id`` is ``O`` plus five digits), so a new pack needs no
code: a slot named like a table's primary key gets a pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wow_ray.scenario import ScenarioPack
from wow_ray.scenario.spec import SlotSpec

_ID_SHAPE = re.compile(r"^([A-Za-z]+)([0-9]+)$")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class IdShape:
    """An id's form: a letter prefix and a run of digits (``O`` + 5 digits)."""

    prefix: str
    min_digits: int
    max_digits: int

    @property
    def json_pattern(self) -> str:
        """Anchored, for a JSON schema (bounded, so a model cannot run on forever)."""
        return f"^{self.prefix}[0-9]{{{self.min_digits},{self.max_digits}}}$"

    def find_all(self, text: str) -> list[str]:
        pattern = rf"(?<![A-Za-z0-9]){self.prefix}[0-9]{{{self.min_digits},{self.max_digits}}}(?![0-9])"
        found = [m.group(0).upper() for m in re.finditer(pattern, text, re.IGNORECASE)]
        return list(dict.fromkeys(found))


def id_shapes(pack: ScenarioPack) -> dict[str, IdShape]:
    """Slot name -> the shape of the ids in the fixture table whose primary key it names."""
    shapes: dict[str, IdShape] = {}
    for table, spec in pack.schema.tables.items():
        key = spec.primary_key
        matches = [_ID_SHAPE.match(str(row.get(key, ""))) for row in pack.fixtures.get(table, [])]
        if not matches or not all(matches):
            continue
        prefixes = {m.group(1).upper() for m in matches}
        if len(prefixes) != 1:
            continue
        lengths = [len(m.group(2)) for m in matches]
        shapes[key] = IdShape(prefixes.pop(), min(lengths), max(lengths))
    return shapes


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def appears_in(value: Any, text: str) -> bool:
    """Whether ``value`` was said: an id or number verbatim, free text as a run of the
    customer's words ('Order from last week' is not in 'order O10336 from last week')."""
    if value is None:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        number = f"{value:g}"
        return re.search(rf"(?<![0-9.]){re.escape(number)}(?![0-9])", text) is not None
    value_words = words(str(value))
    if not value_words:
        return False
    said, n = words(text), len(value_words)
    return any(said[i:i + n] == value_words for i in range(len(said) - n + 1))


# What ends a stretch of speech before a value: a value right after one starts afresh.
_STARTS_AFRESH = tuple(".!?;:\n\"'([")


def free_text_as_said(value: Any, text: str, is_other_value: Callable[[str], bool]) -> str | None:
    """A free-text value as the customer said it, or None when they did not say it.

    Another slot's value at either edge is cut off ('Northwind Analytics Co., Ltd.
    91310115MA1K4QW87E' is a title and a tax id); one inside, words not said as a run, or a
    value that begins inside a name ('Huangpu District, Shanghai' of '484 Fuxing Road,
    Huangpu District, Shanghai') is not what the customer said.
    """
    parts = str(value).split()
    while parts and is_other_value(parts[0].strip(",;:")):
        parts.pop(0)
    while parts and is_other_value(parts[-1].strip(",;:")):
        parts.pop()
    if any(is_other_value(p.strip(",;:.")) for p in parts):
        return None
    cut = " ".join(parts).strip(" ,;:")
    value_words = words(cut)
    if not value_words:
        return None
    # Each match is a run of the customer's words (what ``appears_in`` checks), located.
    run = r"[^a-z0-9]+".join(re.escape(w) for w in value_words)
    for match in re.finditer(rf"(?<![a-z0-9]){run}(?![a-z0-9])", text, re.IGNORECASE):
        if not _begins_inside_a_name(text[:match.start()], is_other_value):
            return cut
    return None


def _begins_inside_a_name(before: str, is_other_value: Callable[[str], bool]) -> bool:
    """Whether the words before a value run on into it: a capitalised word or a number just
    before it, with at most a comma between ('Road, Huangpu ...'), and no id in between."""
    before = before.rstrip()
    if not before or before.endswith(_STARTS_AFRESH):
        return False
    last = before.rstrip(",").split()[-1].strip("\"'()[]")
    if not last or is_other_value(last):
        return False
    return last[0].isupper() or any(c.isdigit() for c in last)


def enum_mention(slot: SlotSpec, text: str) -> str | None:
    """The one enum value the text names (``cold`` in 'it arrived stone cold', or a phrase of
    the slot's ``mentions``: 'charged twice' for duplicate_charge), else None."""
    hits = enum_mentions(slot, text)
    return hits[0] if len(hits) == 1 else None


def enum_mentions(slot: SlotSpec, text: str) -> list[str]:
    """Every enum value the text names, in the order the text names them."""
    if not slot.enum:
        return []
    said = " " + " ".join(words(text)) + " "
    first: dict[str, int] = {}
    for value in slot.enum:
        found = [said.find(f" {' '.join(words(p))} ")
                 for p in [value.replace("_", " "), *slot.mentions.get(value, [])]]
        if any(i >= 0 for i in found):
            first[value] = min(i for i in found if i >= 0)
    return sorted(first, key=first.__getitem__)


def stated_values(slot: SlotSpec, text: str, ids: Iterable[IdShape] = ()) -> list[str]:
    """Values the text states by the slot's own patterns: what its cues announce or, when no
    cue fires, the words of its shape that are not ids of the pack's records (an account
    number U0160 has the shape of a promo code); in order, without repeats."""
    found = [m.group(1).strip() for cue in slot.cues for m in re.finditer(cue, text)]
    if not found and slot.shape:
        found = [m.group(0) for m in re.finditer(rf"(?<![\w-])(?:{slot.shape})(?![\w-])", text)
                 if not any(shape.find_all(m.group(0)) for shape in ids)]
    return list(dict.fromkeys(v for v in found if v))


def coerce(slot: SlotSpec, value: Any) -> Any:
    """The value in the slot's declared type and enum, or None when it does not fit."""
    if value is None or value == "":
        return None
    try:
        if slot.type == "integer":
            value = int(value)
        elif slot.type == "number":
            value = float(value)
        elif slot.type == "boolean":
            if isinstance(value, str):
                value = value.strip().lower() in ("true", "yes", "1")
            value = bool(value)
        else:
            value = str(value).strip()
    except (TypeError, ValueError):
        return None
    if slot.enum and value not in slot.enum:
        return None
    return value
