"""DeAR's two collectives: reduce-scatter and all-gather, in place on one flat buffer, async.

A flat buffer of `n * k` elements is seen as `n` chunks of `k`, one per rank. Reduce-scatter
leaves the element-wise sum of everyone's chunk `r` in rank `r`'s chunk `r` (the other chunks
then hold partial sums: scratch). All-gather copies every rank's chunk `r` into chunk `r` of
everyone's buffer. Together they are an all-reduce, split so that the halves can overlap
different phases of training.

Why not torch's own: on gloo, `reduce_scatter_single` and `all_gather_single` (formerly
`*_tensor`) each cost about twice an `all_reduce` (docs/design.md). Here, on gloo, both are
bandwidth-optimal rings over point-to-point operations: each rank sends (n-1)/n of the buffer
once per collective, the same bytes as one half of a ring all-reduce, and the all-gather
receives straight into the buffer (no copy). On NCCL the native collectives are already
optimal and asynchronous on their own stream, so they are used as they are.

What makes the gloo ring fast (benchmarks/README.md has the measurements):
- No receive announcement waits behind payload. Gloo's TCP pair has one ordered transmit
  queue, and a send only starts once the receiver has announced its buffer over the same
  connection. With two ranks the ring's two links join the same pair, so an announcement
  could queue behind this rank's own outgoing payload and the two directions would take
  turns (measured: 1.83x instead of 1.0x). So every step posts its receives before its
  sends, and with two ranks the second direction gets a connection of its own (a second
  process group), which also removes the same stall at every boundary between two
  collectives, where the next announcement would wait behind the previous payload still in
  the socket buffer.
- Pipelining: chunks travel in 1 MB pieces, each forwarded as soon as it arrives (and is
  summed), so the ring is not held up a whole chunk at every step by the slowest rank.
- A background thread, one per communicator, drives the ring while the main thread computes
  (a ring step needs the previous step's result). It takes jobs in submission order, so all
  ranks issue the same sequence of point-to-point operations. They travel on the caller's
  process group under a tag of their own (one per communicator, numbered in creation order per
  group, the same on every rank), so they never match another communicator's messages or the
  main thread's collectives. Only the two-rank second connection is a new process group: torch
  needs every rank of the default group to create one with a unique name, so it is made only
  for a communicator on the default group, whose ranks all construct it.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable

import torch
import torch.distributed as dist

ALGORITHMS = ("auto", "ring", "native")
PIECE_BYTES = 2**20  # the ring's pipelining grain (see _pieces); 1 MB measured best on 1 Gbit
MAX_PIECES = 64
# Per process group: communicators of one group are created in the same order on its ranks,
# whatever other groups a rank belongs to. Tag 0 stays free for the user's own operations.
_TAGS: dict[str, itertools.count] = {}


class Handle:
    """A collective in flight; `wait()` blocks until its result is in the buffer."""

    def wait(self) -> None:
        raise NotImplementedError

    def is_completed(self) -> bool:
        raise NotImplementedError


class _Completed(Handle):
    def wait(self) -> None:
        return None

    def is_completed(self) -> bool:
        return True


class _WorkHandle(Handle):
    """A torch.distributed Work (NCCL: waiting makes the current stream wait); `then` runs
    once, on the first wait, ordered after the collective on the current stream."""

    def __init__(self, work: dist.Work, then: Callable[[], None] | None) -> None:
        self._work = work
        self._then = then

    def wait(self) -> None:
        self._work.wait()
        if self._then is not None:
            then, self._then = self._then, None
            then()

    def is_completed(self) -> bool:
        return self._work.is_completed()


class _ThreadHandle(Handle):
    def __init__(self) -> None:
        self._done = threading.Event()
        self._error: BaseException | None = None

    def wait(self) -> None:
        self._done.wait()
        if self._error is not None:
            raise RuntimeError("DeAR collective failed on the communication thread") \
                from self._error

    def is_completed(self) -> bool:
        return self._done.is_set()


class _SerialWorker:
    """One daemon thread that runs jobs in submission order; a failed job fails all later ones
    (a broken ring cannot be resumed: the peers are at unknown steps)."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> Handle:
        handle = _ThreadHandle()
        self._jobs.put((job, handle))
        return handle

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, handle = item
            try:
                if self._failed is not None:
                    raise RuntimeError("an earlier collective failed") from self._failed
                job()
            except BaseException as error:  # handed to whoever waits on the handle
                self._failed = self._failed or error
                handle._error = error
            finally:
                handle._done.set()

    def close(self, timeout: float = 60.0) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)


def _links(group: dist.ProcessGroup, tag: int,
           wrap_group: dist.ProcessGroup | None) -> tuple[int, int, dict, dict]:
    """World size, rank, and the isend/irecv arguments for the ring's two neighbours. The
    wrap-around link (last rank to rank 0) may travel on a group of its own: with two ranks
    that keeps each TCP connection one-directional for payload (module doc)."""
    n, rank = dist.get_world_size(group), dist.get_rank(group)
    send_group = wrap_group if wrap_group is not None and rank == n - 1 else group
    recv_group = wrap_group if wrap_group is not None and rank == 0 else group
    send = {"group": send_group, "group_dst": (rank + 1) % n, "tag": tag}
    recv = {"group": recv_group, "group_src": (rank - 1) % n, "tag": tag}
    return n, rank, send, recv


def _pieces(length: int, element_size: int) -> list[slice]:
    """Cut a chunk into pieces that are forwarded as soon as they arrive: a rank does not wait
    for a whole chunk before passing it on, so a slow step on one rank delays the ring by one
    piece, not one chunk. Pieces stay large enough that per-message costs vanish."""
    count = max(1, min(MAX_PIECES, length * element_size // PIECE_BYTES))
    bounds = [length * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def ring_reduce_scatter(flat: torch.Tensor, group: dist.ProcessGroup, tag: int = 0,
                        wrap_group: dist.ProcessGroup | None = None,
                        scratch: torch.Tensor | None = None) -> None:
    """Synchronous ring reduce-scatter in place: afterwards chunk `rank` holds the sum.

    Step s sends chunk (rank-s-1) to the next rank and adds the previous rank's chunk
    (rank-s-2) into ours; after n-1 steps chunk `rank` has every contribution. Each piece is
    forwarded as soon as its sum is made; two receive buffers let the next step's receives be
    posted before this step's additions. `scratch` (at least two chunks of the same dtype),
    if given, is used for them instead of fresh memory (page faults are not free).
    """
    n, rank, to_next, from_prev = _links(group, tag, wrap_group)
    if n == 1:
        return
    chunks = _chunks(flat, n)
    pieces = _pieces(chunks.shape[1], flat.element_size())
    size = chunks.shape[1]
    if scratch is None or scratch.numel() < 2 * size or scratch.dtype != flat.dtype:
        scratch = torch.empty(2 * size, dtype=flat.dtype, device=flat.device)
    scratch = [scratch[:size], scratch[size:2 * size]]

    def post_receives(step: int) -> list:
        if step >= n - 1:
            return []
        return [dist.irecv(scratch[step % 2][p], **from_prev) for p in pieces]

    receives = post_receives(0)  # receives before sends: see the module doc
    sends = [dist.isend(chunks[(rank - 1) % n][p], **to_next) for p in pieces]
    for step in range(n - 1):
        following = post_receives(step + 1)
        summed = chunks[(rank - step - 2) % n]
        for p, receive in zip(pieces, receives, strict=True):
            receive.wait()
            summed[p].add_(scratch[step % 2][p])
            if step + 1 < n - 1:
                sends.append(dist.isend(summed[p], **to_next))
        receives = following
    for send in sends:
        send.wait()


def ring_all_gather(flat: torch.Tensor, group: dist.ProcessGroup, tag: int = 0,
                    wrap_group: dist.ProcessGroup | None = None) -> None:
    """Synchronous ring all-gather in place: chunk `rank` is the input, all chunks the output.

    Step s forwards chunk (rank-s) and receives chunk (rank-s-1) straight into the buffer;
    every piece's place is known, so all receives are posted first, and each piece is
    forwarded as soon as it arrives.
    """
    n, rank, to_next, from_prev = _links(group, tag, wrap_group)
    if n == 1:
        return
    chunks = _chunks(flat, n)
    pieces = _pieces(chunks.shape[1], flat.element_size())
    receives = [[dist.irecv(chunks[(rank - step - 1) % n][p], **from_prev) for p in pieces]
                for step in range(n - 1)]
    sends = [dist.isend(chunks[rank][p], **to_next) for p in pieces]
    for step in range(n - 1):
        arrived = chunks[(rank - step - 1) % n]
        for p, receive in zip(pieces, receives[step], strict=True):
            receive.wait()
            if step + 1 < n - 1:
                sends.append(dist.isend(arrived[p], **to_next))
    for send in sends:
        send.wait()


def _chunks(flat: torch.Tensor, n: int) -> torch.Tensor:
    if flat.dim() != 1 or not flat.is_contiguous():
        raise ValueError("DeAR collectives work on contiguous 1-D buffers")
    if flat.numel() % n:
        raise ValueError(f"buffer of {flat.numel()} elements does not split into {n} chunks")
    return flat.view(n, flat.numel() // n)


class Communicator:
    """Issues DeAR's reduce-scatter and all-gather on one process group, asynchronously.

    algorithm: "ring" (point-to-point rings on a background thread; for gloo), "native"
    (torch's reduce_scatter_single / all_gather_single; for NCCL), or "auto" (ring on
    gloo, native elsewhere). Construct communicators in the same order on every rank of
    `group` (their tags are numbered in creation order).
    """

    def __init__(self, group: dist.ProcessGroup | None = None, algorithm: str = "auto") -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        self.group = group if group is not None else dist.group.WORLD
        self.world_size = dist.get_world_size(self.group)
        self.rank = dist.get_rank(self.group)
        backend = dist.get_backend(self.group)
        if algorithm == "auto":
            algorithm = "ring" if backend == "gloo" else "native"
        self.algorithm = algorithm
        self._worker: _SerialWorker | None = None
        self._wrap_group: dist.ProcessGroup | None = None
        self._scratch: dict[tuple, torch.Tensor] = {}
        self.tag = next(_TAGS.setdefault(self.group.group_name, itertools.count(1)))
        if algorithm == "ring" and self.world_size > 1:
            self._worker = _SerialWorker(f"dear-ring-{self.tag}")
            if self.world_size == 2 and self.group == dist.group.WORLD:
                # Both ring links join the same two ranks: give one direction its own
                # connection (module doc). new_group needs every rank of the default group,
                # which a WORLD communicator has; on a subgroup the single connection stays.
                self._wrap_group = dist.new_group(backend="gloo")

    def reduce_scatter(self, flat: torch.Tensor,
                       then: Callable[[], None] | None = None) -> Handle:
        """Start an in-place reduce-scatter (sum) of `flat`; chunk `rank` receives the sum.

        `then` runs once the result is there, before the handle completes: on the ring thread
        for gloo (so consuming the result overlaps the caller's work), at `wait()` otherwise.
        """
        return self._start(flat, self._ring_reduce_scatter, self._native_reduce_scatter, then)

    def _ring_reduce_scatter(self, flat: torch.Tensor, group: dist.ProcessGroup, tag: int,
                             wrap: dist.ProcessGroup | None) -> None:
        # Runs on the ring thread only, so one scratch buffer per dtype/device is enough.
        key = (flat.dtype, flat.device)
        need = 2 * flat.numel() // self.world_size
        if key not in self._scratch or self._scratch[key].numel() < need:
            self._scratch[key] = torch.empty(need, dtype=flat.dtype, device=flat.device)
        ring_reduce_scatter(flat, group, tag, wrap, self._scratch[key])

    def all_gather(self, flat: torch.Tensor, then: Callable[[], None] | None = None) -> Handle:
        """Start an in-place all-gather: every rank's chunk `rank` lands in everyone's `flat`."""
        return self._start(flat, ring_all_gather, self._native_all_gather, then)

    def _start(self, flat: torch.Tensor, ring: Callable, native: Callable,
               then: Callable[[], None] | None) -> Handle:
        chunks = _chunks(flat, self.world_size)
        if self.world_size == 1:
            if then is not None:
                then()
            return _Completed()
        if self._worker is not None:
            group, tag, wrap = self.group, self.tag, self._wrap_group

            def job() -> None:
                ring(flat, group, tag, wrap)
                if then is not None:
                    then()

            return self._worker.submit(job)
        return _WorkHandle(native(flat, chunks[self.rank]), then)

    def _native_reduce_scatter(self, flat: torch.Tensor, mine: torch.Tensor) -> dist.Work:
        # NCCL supports this aliasing (output == input + rank * chunk) without a copy.
        return dist.reduce_scatter_single(mine, flat, group=self.group, async_op=True)

    def _native_all_gather(self, flat: torch.Tensor, mine: torch.Tensor) -> dist.Work:
        return dist.all_gather_single(flat, mine, group=self.group, async_op=True)

    def close(self) -> None:
        """Stop the ring thread after the jobs already submitted."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self._wrap_group is not None:
            dist.destroy_process_group(self._wrap_group)
            self._wrap_group = None


def broadcast_coalesced(tensors: list[torch.Tensor], group: dist.ProcessGroup,
                        chunk_bytes: int = 256 * 2**20) -> None:
    """Copy rank 0's values of `tensors` (deduplicated) to every rank, in flat chunks of about
    `chunk_bytes` per dtype and device (as DDP's construction does), not one call per tensor."""
    unique = list({id(t): t for t in tensors if t.numel() > 0}.values())
    by_kind: dict[tuple, list[torch.Tensor]] = {}
    for tensor in unique:
        by_kind.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for kind in by_kind.values():
        chunk: list[torch.Tensor] = []
        size = 0
        for tensor in [*kind, None]:
            if tensor is not None and (not chunk or size + tensor.nbytes <= chunk_bytes):
                chunk.append(tensor)
                size += tensor.nbytes
                continue
            flat = torch.cat([t.detach().reshape(-1) for t in chunk])
            dist.broadcast(flat, group=group, group_src=0)
            offset = 0
            for t in chunk:
                t.detach().copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()
            chunk, size = ([tensor], tensor.nbytes) if tensor is not None else ([], 0)
