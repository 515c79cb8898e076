"""Online tuning of the bucket size by Bayesian optimisation of the iteration time.

The paper tunes the fusion buffer size with Bayesian optimisation over the first iterations;
this is a small, dependency-free version of the same idea (numpy only): a Gaussian process
with a Matern-5/2 kernel over log2(bucket size), hyper-parameters chosen by marginal
likelihood on a small grid, and expected improvement over a grid of candidate sizes. A trial
measures a few iterations at one size after discarding the first ones (the switch itself and
cache effects); after the last trial the size with the lowest posterior mean among those tried
is chosen, because single measurements on a shared machine are noisy.

The tuner is pure: it sees iteration times and answers bucket sizes. Agreeing across ranks
(averaging the trial time, taking rank 0's proposal) is the synchroniser's job.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

_LENGTHSCALES = (0.05, 0.1, 0.2, 0.4, 0.8)
_NOISES = (1e-3, 1e-2, 0.1, 0.3)
_CANDIDATES = 256


class BucketSizeTuner:
    """Chooses a bucket size (MB) within `bounds_mb` in `trials` trials."""

    def __init__(self, bounds_mb: tuple[float, float] = (1.0, 256.0), trials: int = 10,
                 warmup_iters: int = 2, iters_per_trial: int = 3,
                 initial_mb: float = 25.0) -> None:
        self.bounds_mb = (float(bounds_mb[0]), float(bounds_mb[1]))
        self.trials = trials
        self.warmup_iters = warmup_iters
        self.iters_per_trial = iters_per_trial
        self.current_mb = float(min(max(initial_mb, self.bounds_mb[0]), self.bounds_mb[1]))
        self.observations: list[tuple[float, float]] = []  # (bucket MB, seconds per iteration)
        self.done = False
        self.best_mb: float | None = None
        self._skip = warmup_iters
        self._samples: list[float] = []

    def record(self, seconds: float) -> bool:
        """One iteration's time at `current_mb`; True once the current trial has enough."""
        if self.done:
            return False
        if self._skip > 0:
            self._skip -= 1
            return False
        self._samples.append(seconds)
        return len(self._samples) >= self.iters_per_trial

    @property
    def trial_seconds(self) -> float:
        """This trial's measurement: the median of its iterations."""
        return statistics.median(self._samples)

    def finish_trial(self, seconds: float) -> float:
        """Record the trial (`seconds` as agreed by all ranks); return the size to use next:
        the next one to try, or after the last trial the chosen one."""
        self.observations.append((self.current_mb, float(seconds)))
        self._samples = []
        if len(self.observations) >= self.trials:
            self.done = True
            self.best_mb = self._best()
            return self.best_mb
        return self._suggest()

    def accept(self, size_mb: float) -> None:
        """Switch to `size_mb` (the proposal every rank agreed on)."""
        if self.done:
            self.best_mb = size_mb
        self.current_mb = size_mb
        self._skip = self.warmup_iters

    # --------------------------------------------------------------- Gaussian process

    def _to_unit(self, size_mb: np.ndarray) -> np.ndarray:
        low, high = (math.log2(b) for b in self.bounds_mb)
        return (np.log2(size_mb) - low) / (high - low)

    def _from_unit(self, x: float) -> float:
        low, high = (math.log2(b) for b in self.bounds_mb)
        return float(f"{2 ** (low + x * (high - low)):.3g}")  # 3 significant digits

    def _posterior(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Posterior mean and std at `candidates` (unit scale), and y's mean and scale."""
        x = self._to_unit(np.array([size for size, _ in self.observations]))
        y = np.array([seconds for _, seconds in self.observations])
        y_mean, y_scale = y.mean(), (y.std() or 1.0)
        z = (y - y_mean) / y_scale
        best = None
        for lengthscale in _LENGTHSCALES:
            for noise in _NOISES:
                k = _matern52(x[:, None], x[None, :], lengthscale) + noise * np.eye(len(x))
                chol = np.linalg.cholesky(k)
                alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
                evidence = -0.5 * z @ alpha - np.log(np.diag(chol)).sum()
                if best is None or evidence > best[0]:
                    best = (evidence, lengthscale, chol, alpha)
        _, lengthscale, chol, alpha = best
        k_star = _matern52(candidates[:, None], x[None, :], lengthscale)
        mean = k_star @ alpha
        v = np.linalg.solve(chol, k_star.T)
        std = np.sqrt(np.clip(1.0 - (v * v).sum(axis=0), 1e-12, None))
        return mean, std, y_mean, y_scale

    def _suggest(self) -> float:
        """The candidate size with the highest expected improvement (iteration time is minimised)."""
        candidates = np.linspace(0.0, 1.0, _CANDIDATES)
        mean, std, y_mean, y_scale = self._posterior(candidates)
        best_z = (min(s for _, s in self.observations) - y_mean) / y_scale
        improvement = best_z - mean - 0.01
        z = improvement / std
        cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in z])
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        expected = improvement * cdf + std * pdf
        tried = self._to_unit(np.array([size for size, _ in self.observations]))
        expected[np.abs(candidates[:, None] - tried[None, :]).min(axis=1) < 0.5 / _CANDIDATES] = -1
        return self._from_unit(float(candidates[int(np.argmax(expected))]))

    def _best(self) -> float:
        sizes = np.array([size for size, _ in self.observations])
        mean, _, _, _ = self._posterior(self._to_unit(sizes))
        return float(sizes[int(np.argmin(mean))])

    # --------------------------------------------------------------- checkpointing

    def state_dict(self) -> dict:
        return {"observations": list(self.observations), "done": self.done,
                "best_mb": self.best_mb, "current_mb": self.current_mb}

    def load_state_dict(self, state: dict) -> None:
        self.observations = [tuple(o) for o in state["observations"]]
        self.done = state["done"]
        self.best_mb = state["best_mb"]
        self.current_mb = state["current_mb"]
        self._skip, self._samples = self.warmup_iters, []


def _matern52(a: np.ndarray, b: np.ndarray, lengthscale: float) -> np.ndarray:
    r = np.abs(a - b) * math.sqrt(5.0) / lengthscale
    return (1.0 + r + r * r / 3.0) * np.exp(-r)
