"""Offers: a remedy the customer demands and the rules refuse is answered with the one they
allow, and that one is done only if the customer accepts it.

A customer who asks for a full refund of a late order and accepts nothing else must not find a
partial refund in their account afterwards: the rules refused what they asked for, and the
allowed substitute is theirs to take or leave. So, as the oracle tries a demanded option first
(``scenario/oracle.py``), the solution agent tries the demanded write first; when the rules
refuse it, it asks them (a dry run) which of the playbook's other options they would allow and
offers that one. The master keeps the offer in the session (``ActiveRequest.offer``); the
customer's next message accepts or declines it.

What a customer demands is read in the pack's words (``asked_for`` of a write tool in
tools.yaml: 'full refund', '{amount} coupon'); yes and no are English, kept here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from wow_ray.scenario import ScenarioPack, ToolCall
from wow_ray.scenario.spec import ChooseStep

_CURRENCY_WORDS = r"CNY|RMB|yuan|USD|EUR|dollars?|euros?"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_YES = re.compile(r"\b(?:yes|yeah|yep|sure|ok(?:ay)?|please do|go ahead|sounds good|that works|"
                  r"fine|alright|i(?:'ll| will) take (?:it|that)|i accept|deal)\b", re.I)
_NO = re.compile(r"\b(?:no|nope|not good enough|(?:don't|do not|won't|will not) (?:want|accept|take)|"
                 r"only want|nothing else|not interested|refuse)\b", re.I)


def consent(text: str) -> bool | None:
    """The customer's answer to an offer: True (yes), False (no), None (neither said)."""
    if _NO.search(text):
        return False
    if _YES.search(text):
        return True
    return None


class DemandReader:
    """Finds the write a customer demands by name ('a full refund', 'a 10 CNY coupon')."""

    def __init__(self, pack: ScenarioPack) -> None:
        currency = re.escape(pack.manifest.currency)
        number = (rf"(?:(?:{currency}|{_CURRENCY_WORDS}|¥|\$)\s*)?([0-9]+(?:\.[0-9]+)?)"
                  rf"(?:\s*(?:{currency}|{_CURRENCY_WORDS}))?")
        self.pack = pack
        self.phrases: dict[str, list[tuple[re.Pattern[str], list[str]]]] = {}
        for tool in pack.tools:
            for phrase in tool.spec.asked_for:
                parts = _PLACEHOLDER.split(phrase)  # text, name, text, name, ..., text
                regex = "".join(number if i % 2 else r"\s+".join(map(re.escape, part.split(" ")))
                                for i, part in enumerate(parts))
                pattern = re.compile(rf"(?<![\w.]){regex}(?!\w)", re.I)
                self.phrases.setdefault(tool.spec.name, []).append((pattern, parts[1::2]))

    def tools_for(self, intent: str) -> list[str]:
        """The writes a customer may demand of ``intent``: its playbook's choices."""
        playbook = self.pack.playbooks.playbooks.get(intent)
        steps = playbook.steps if playbook else []
        return [o.call for s in steps if isinstance(s, ChooseStep) for o in s.choose]

    def read(self, text: str, tools: Iterable[str]) -> ToolCall | None:
        """The demand named earliest in ``text`` among ``tools``, its numbers as arguments."""
        found: list[tuple[int, ToolCall]] = []
        for tool in dict.fromkeys(tools):
            spec = self.pack.tools.spec(tool)
            for pattern, names in self.phrases.get(tool, []):
                match = pattern.search(text)
                if match is None:
                    continue
                args = {}
                for name, value in zip(names, match.groups(), strict=True):
                    kind = spec.parameters.properties[name].type
                    args[name] = int(float(value)) if kind == "integer" else float(value)
                found.append((match.start(), ToolCall(name=tool, arguments=args)))
        return min(found, key=lambda f: f[0])[1] if found else None
