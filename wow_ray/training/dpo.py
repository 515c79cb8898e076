"""DPO: preference pairs to padded batches, sequence log-probabilities, and the loss.

The loss is DPO's (Rafailov et al. 2023, eq. 7):
``-log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))``,
with log-probabilities summed over the answer's tokens only. Written here rather than taken
from TRL: TRL's DPOTrainer owns the training loop, and ours has to be the Ray Train + DeAR one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wow_ray.training.sft_data import IGNORE, tokenise_chat


@dataclass
class Pairs:
    """Tokenised preference pairs; ragged, padded per micro-batch."""

    chosen: list[tuple[np.ndarray, np.ndarray]]
    rejected: list[tuple[np.ndarray, np.ndarray]]
    pad_id: int
    dropped: int

    def __len__(self) -> int:
        return len(self.chosen)

    @property
    def target_tokens(self) -> int:
        return sum(int((lab != IGNORE).sum()) for _, lab in self.chosen + self.rejected)

    def batch(self, index: list[int]) -> dict[str, np.ndarray]:
        """Chosen answers in the first half of the batch, rejected in the second."""
        seqs = [self.chosen[i] for i in index] + [self.rejected[i] for i in index]
        length = max(len(ids) for ids, _ in seqs)
        ids = np.full((len(seqs), length), self.pad_id, dtype=np.int64)
        labels = np.full((len(seqs), length), IGNORE, dtype=np.int64)
        mask = np.zeros((len(seqs), length), dtype=np.int64)
        for row, (tokens, targets) in enumerate(seqs):
            ids[row, :len(tokens)] = tokens
            labels[row, :len(tokens)] = targets
            mask[row, :len(tokens)] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def tokenise_pairs(tokenizer, samples: list, *, seq_len: int, max_prompt_tokens: int) -> Pairs:
    """``PreferenceSample``s to token ids with answer-only labels; over-long prompts keep their
    end (the latest turns), over-long answers are cut; pairs left with no answer are dropped."""
    chosen, rejected, dropped = [], [], 0
    for sample in samples:
        prompt = [m.model_dump() for m in sample.prompt]
        both = []
        for answer in (sample.chosen, sample.rejected):
            ids, labels = tokenise_chat(
                tokenizer, [*prompt, {"role": "assistant", "content": answer}], "last")
            first = next((i for i, t in enumerate(labels) if t != IGNORE), len(labels))
            cut = max(0, first - max_prompt_tokens)
            ids, labels = ids[cut:][:seq_len], labels[cut:][:seq_len]
            both.append((np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)))
        if all((lab[1:] != IGNORE).any() for _, lab in both):
            chosen.append(both[0])
            rejected.append(both[1])
        else:
            dropped += 1
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return Pairs(chosen, rejected, pad, dropped)


def sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of log p(token) over each row's labelled tokens: shape [rows]."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   use_cache=False).logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    # Flattened: cross_entropy over a [rows, vocab, length] view is about 8x slower on CPU.
    token_logps = -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=IGNORE, reduction="none").view(targets.shape)
    return token_logps.sum(dim=1)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """Per-pair DPO loss and implicit rewards; ``policy``/``reference``: [chosen..., rejected...]."""
    half = policy.shape[0] // 2
    chosen_reward = beta * (policy[:half] - reference[:half])
    rejected_reward = beta * (policy[half:] - reference[half:])
    margin = chosen_reward - rejected_reward
    return {"loss": -F.logsigmoid(margin), "margin": margin.detach(),
            "accuracy": (margin > 0).float().detach()}
