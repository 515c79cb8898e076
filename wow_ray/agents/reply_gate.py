"""Streams a reply's text only once it stands: sentence by sentence, each checked first.

A customer must never read text that is then taken back. So the model's reply is held until a
sentence is complete, the reply so far plus that sentence passes every check that can be made
on a prefix (numbers and ids grounded, no unsupported claim, no recital, no leak, not too long),
and only then released. The first sentence that fails stops the release: it and everything
after it are dropped, never shown. What only the whole reply can show (a value it had to quote,
a question a clarifying reply must ask) is then added at the end, after the released text,
rather than replacing it (``ResponseAgent.complete``); when not even the first sentence stood,
nothing was shown and the deterministic fallback is the whole reply.

A sentence is the unit because the checks are: a claim ("the refund ... has been issued") is
matched within a sentence, so a partial sentence can pass and its end fail. The cost is the
time to the first complete sentence; ``benchmarks/bench_turns.py`` measures it.

The same gate settles a whole (unstreamed) text, so a streamed and an unstreamed turn give the
same reply from the same model output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from wow_ray.agents.base import InvalidOutput

# A sentence ends at ., ! or ? (closing quotes or brackets may follow) before white space, or
# at a line break. "12.5" and "O10337." at the very end stay in the buffer until more arrives.
_SENTENCE_END = re.compile(r"""(?<=[.!?])["')\]]*\s+|\n+""")


def _clean(text: str) -> str:
    return " ".join(text.split())


class ReplyGate:
    """Releases checked sentences of a reply as its pieces arrive.

    ``check(prefix)`` raises ``InvalidOutput`` when the reply so far cannot stand; ``release``
    gets each piece of text that stands (``None``: nothing is streamed). ``shown`` is what was
    released: the released pieces joined, always a prefix of the final reply.
    """

    def __init__(self, check: Callable[[str], Any],
                 release: Callable[[str], Any] | None = None) -> None:
        self.check = check
        self.release = release
        self.shown = ""
        self.buffer = ""
        self.rejected: str | None = None
        self.cut = False  # the model stopped mid-sentence (its token budget ran out)

    @property
    def streaming(self) -> bool:
        return self.release is not None

    def restart(self) -> None:
        """Forget a draft of which nothing was shown (before a retry)."""
        assert not self.shown, "shown text is never taken back"
        self.buffer, self.rejected, self.cut = "", None, False

    def feed(self, piece: str) -> None:
        """Take one streamed piece; release every sentence it completes that passes."""
        if self.rejected is not None:
            return
        self.buffer += piece
        while self.rejected is None:
            end = _SENTENCE_END.search(self.buffer)
            if end is None:
                return
            sentence, self.buffer = self.buffer[:end.start() + len(end.group(0).rstrip())], \
                self.buffer[end.end():]
            self._offer(sentence)

    def close(self, finish_reason: str | None = None) -> None:
        """The stream ended: offer the last sentence, unless the token budget cut it off."""
        tail, self.buffer = self.buffer, ""
        if self.rejected is not None or not tail.strip():
            return
        if finish_reason == "length" and not re.search(r"[.!?][\"')\]]*\s*$", tail):
            self.cut = True
            self.rejected = "the reply was cut off by its token budget"
            return
        self._offer(tail)

    def settle(self, text: str, finish_reason: str | None = None) -> str:
        """Run a whole text through the gate at once; return what stands."""
        self.feed(text)
        self.close(finish_reason)
        return self.shown

    def push(self, text: str) -> None:
        """Release text that stands by construction (a completion made of facts)."""
        text = _clean(text)
        if not text:
            return
        piece = f" {text}" if self.shown else text
        self.shown += piece
        if self.release is not None:
            self.release(piece)

    @property
    def whole(self) -> bool:
        """Every sentence of the model's text was released: nothing dropped."""
        return self.rejected is None

    def _offer(self, sentence: str) -> None:
        sentence = _clean(sentence)
        if not sentence:
            return
        candidate = f"{self.shown} {sentence}" if self.shown else sentence
        try:
            self.check(candidate)
        except InvalidOutput as exc:
            self.rejected = str(exc)
            return
        self.push(sentence)
