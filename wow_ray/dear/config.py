"""DeAR's settings: one validated dataclass, so a training job can carry it in its own config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


def _option(default: object, description: str) -> object:
    """A field whose description travels with it (job configs print it in their --help)."""
    return field(default=default, metadata={"description": description})


@dataclass
class DeARConfig:
    """How DeAR buckets, communicates and tunes. Invalid values raise ValueError naming the field.
    Each field's description is in its metadata (`dataclasses.fields(DeARConfig)`)."""

    bucket_size_mb: float = _option(
        25.0, "Size of one fused gradient bucket. Smaller buckets start communicating earlier "
        "in backward and let the next forward start sooner; larger ones waste less time per "
        "collective. 25 MB is DDP's and the paper's default.")
    tune_bucket_size: bool = _option(
        False, "Tune bucket_size_mb online by Bayesian optimisation of the iteration time over "
        "the first iterations (the paper's method); the choice is logged and kept in "
        "DeAR.state_dict(), so a later run can pass it as bucket_size_mb.")
    tune_bounds_mb: tuple[float, float] = _option(
        (1.0, 256.0), "Tuning: the range of bucket sizes searched (MB).")
    tune_trials: int = _option(10, "Tuning: the number of bucket sizes tried.")
    tune_warmup_iters: int = _option(
        2, "Tuning: iterations discarded after each switch of bucket size.")
    tune_iters_per_trial: int = _option(3, "Tuning: iterations measured per bucket size.")
    all_gather_lookahead: int | None = _option(
        None, "How many buckets' all-gathers may run ahead of the forward pass. None starts "
        "them all when the optimizer steps (most overlap); a number bounds the parameters in "
        "flight.")
    find_unused_parameters: bool = _option(
        False, "Trace the autograd graph after each forward, so buckets holding parameters "
        "the loss does not use are reduced without waiting for the end of backward, and skip "
        "the optimizer update of parameters no rank used (DDP leaves their gradient None, so "
        "its optimizer skips them; without this flag they are stepped with a zero gradient, "
        "which differs under weight decay).")
    collective: str = _option(
        "auto", "'auto' (ring on gloo, native on NCCL), 'ring' or 'native'; see "
        "wow_ray/dear/collectives.py.")
    broadcast_buffers: bool = _option(
        True, "Copy rank 0's buffers (BatchNorm's running statistics, say) to every rank at "
        "the start of each training forward that follows a synchronised one, as DDP's "
        "broadcast_buffers does. Forwards without grad (evaluation) communicate nothing, so "
        "they may run on some ranks only.")
    broadcast_init: bool = _option(
        True, "Copy rank 0's parameters (frozen ones too) and buffers to every rank at "
        "construction, as DDP does, so every rank starts from the same model.")

    def __post_init__(self) -> None:
        if not self.bucket_size_mb > 0:
            raise ValueError(f"bucket_size_mb must be > 0, got {self.bucket_size_mb}")
        low, high = self.tune_bounds_mb
        if not 0 < low < high:
            raise ValueError(f"tune_bounds_mb must be (low, high) with 0 < low < high, "
                             f"got {self.tune_bounds_mb}")
        self.tune_bounds_mb = (float(low), float(high))
        for name in ("tune_trials", "tune_iters_per_trial"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.tune_warmup_iters < 0:
            raise ValueError(f"tune_warmup_iters must be >= 0, got {self.tune_warmup_iters}")
        if self.all_gather_lookahead is not None and self.all_gather_lookahead < 1:
            raise ValueError(
                f"all_gather_lookahead must be None or >= 1, got {self.all_gather_lookahead}")
        if self.collective not in ("auto", "ring", "native"):
            raise ValueError(
                f"collective must be 'auto', 'ring' or 'native', got {self.collective!r}")

    def to_dict(self) -> dict:
        return asdict(self)
