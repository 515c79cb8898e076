"""SFT samples to training rows: chat-template tokenisation with assistant-only labels, packing,
and the deterministic plan of which rows each worker uses at each step.

Tokenisation renders the whole conversation with the model's own chat template (what vLLM will
render at serving time) and labels only the tokens inside assistant turns, found by rendering
each turn's prefix. transformers' ``return_assistant_tokens_mask`` would do the same but needs
``{% generation %}`` markers that SmolLM2's template (and most others) lack.

Packing puts several samples in one row; each sample's ``position_ids`` restart at 0, which
transformers turns into a block-diagonal causal mask (with ``use_cache=False``), so a sample
never attends to its neighbour. The plan is a pure function of (seed, step), so a worker that
restarts from a checkpoint at step N sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = -100


class PackingError(ValueError):
    """The data cannot feed the configured batch (too few rows, template not prefix-stable)."""


def render(tokenizer, messages: list[dict], *, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def tokenise_chat(tokenizer, messages: list[dict], loss_on: str = "last") -> tuple[list[int], list[int]]:
    """Token ids of the rendered chat and labels that are -100 outside the target assistant turns.

    A target turn's labels run from its first content token through its end-of-turn token, so
    the model learns to stop.
    """
    text = render(tokenizer, messages)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if loss_on == "last":
        turns = turns[-1:]
    spans = []
    for i in turns:
        start = len(render(tokenizer, messages[:i], generation_prompt=True))
        upto = render(tokenizer, messages[: i + 1])
        if not text.startswith(upto) or start > len(upto):
            raise PackingError(
                "the chat template does not render a conversation's prefix as a prefix of the "
                "whole; assistant-only labels cannot be located"
            )
        spans.append((start, len(upto)))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = [
        tok if any(lo <= begin < hi for lo, hi in spans) else IGNORE
        for tok, (begin, _end) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return ids, labels


@dataclass
class Rows:
    """Fixed-length training rows: [rows, length] arrays, numpy so Ray ships them cheaply."""

    input_ids: np.ndarray
    labels: np.ndarray
    position_ids: np.ndarray
    lengths: np.ndarray  # real (non-padding) tokens per row
    samples: int  # samples packed into these rows
    dropped: int  # samples longer than a row, left out

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def target_tokens(self) -> int:
        """Tokens the loss is taken on (labels are shifted by one inside the model)."""
        return int((self.labels[:, 1:] != IGNORE).sum())

    def batch(self, index: list[int]) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index],
                "position_ids": self.position_ids[index]}


def pack(samples: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int,
         *, packing: bool = True) -> Rows:
    """Samples into rows of at most ``seq_len`` tokens (first-fit decreasing when packing).

    Samples longer than a row are dropped (and counted) rather than cut: a cut would remove the
    target, which sits at the end. Rows are trimmed to the longest one's length.
    """
    kept = [s for s in samples if len(s[0]) <= seq_len and any(t != IGNORE for t in s[1][1:])]
    bins: list[list[int]] = []
    fill: list[int] = []
    order = sorted(range(len(kept)), key=lambda i: -len(kept[i][0]))
    for i in order:
        size = len(kept[i][0])
        slot = next((b for b, used in enumerate(fill) if packing and used + size <= seq_len), None)
        if slot is None:
            bins.append([i])
            fill.append(size)
        else:
            bins[slot].append(i)
            fill[slot] += size
    length = max(fill, default=1)
    shape = (len(bins), length)
    ids = np.full(shape, pad_id, dtype=np.int64)
    labels = np.full(shape, IGNORE, dtype=np.int64)
    positions = np.zeros(shape, dtype=np.int64)
    lengths = np.asarray(fill, dtype=np.int64)
    for row, members in enumerate(bins):
        at = 0
        for i in sorted(members):  # a stable order inside a row
            tokens, targets = kept[i]
            ids[row, at:at + len(tokens)] = tokens
            labels[row, at:at + len(tokens)] = targets
            positions[row, at:at + len(tokens)] = np.arange(len(tokens))
            at += len(tokens)
        positions[row, at:] = np.arange(length - at)  # padding is a sequence of its own
    return Rows(ids, labels, positions, lengths, samples=len(kept), dropped=len(samples) - len(kept))


class StepPlan:
    """Which items (rows or pairs) each worker's micro-batches hold at each step.

    Every epoch is a fresh permutation seeded by (seed, epoch); a step takes the next
    ``rows_per_step`` items, worker r gets every world-th of them, cut into micro-batches.
    """

    def __init__(self, items: int, *, workers: int, micro_batch_size: int, grad_accum: int,
                 seed: int, epochs: float, max_steps: int | None) -> None:
        self.items, self.workers, self.seed = items, workers, seed
        self.micro, self.accum = micro_batch_size, grad_accum
        per_step = micro_batch_size * grad_accum * workers
        self.steps_per_epoch = items // per_step
        if self.steps_per_epoch == 0:
            raise PackingError(
                f"{items} training rows cannot fill one step of {per_step} "
                f"(micro_batch_size x grad_accum x workers): lower them or pack more data")
        self.total_steps = max_steps or max(1, int(round(epochs * self.steps_per_epoch)))

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        epoch, within = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.items)
        per_step = self.micro * self.accum * self.workers
        mine = order[within * per_step:(within + 1) * per_step][rank::self.workers].tolist()
        return [mine[i * self.micro:(i + 1) * self.micro] for i in range(self.accum)]
