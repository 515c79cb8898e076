"""Micro-benchmark: DeAR's reduce-scatter + all-gather against one all-reduce, on gloo.

DeAR replaces each all-reduce by a reduce-scatter and an all-gather; that only pays if the
pair costs about what the all-reduce costs. For each size and world size this runs, with the
same processes and buffers, interleaved repetitions of:

- `allreduce`: gloo's `all_reduce` (the baseline every ratio is relative to);
- `dear_ring`: wow_ray.dear's ring reduce-scatter followed by its ring all-gather;
- `naive_ring`: the same ring, but each step posts its send before its receive through
  `batch_isend_irecv` (the first trial in docs/design.md; shows the two-rank anomaly);
- `gloo_native`: torch's `reduce_scatter_single` + `all_gather_single` on gloo.

and prints medians and ratios (short sizes are repeated more: see --min-seconds). Networks:
`shaped` runs each rank in its own network namespace on links shaped by `tc`
(benchmarks/emulated_cluster.py; needs root), `loopback` runs the ranks as plain processes on
127.0.0.1.

    python benchmarks/bench_collectives.py --network shaped loopback --ranks 2 4 \
        --sizes-mb 4 16 64 256 --out benchmarks/results/collectives.md

The `--anomaly` flag instead measures one exchange of a buffer between two ranks, in the ways
that isolate the cause of the two-rank anomaly (README): one way only; both ways over gloo with
the send posted first, with the receive posted first, over two connections; both ways over one
plain TCP connection.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("allreduce", "dear_ring", "naive_ring", "gloo_native")


# ---------------------------------------------------------------- worker side (one per rank)

def _worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    sys.path.insert(0, str(ROOT))
    from wow_ray.dear.collectives import Communicator

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://{args.master}:{args.port}",
                            rank=args.rank, world_size=args.world)
    if args.anomaly:
        results = _anomaly(args, torch, dist)
    else:
        comm = Communicator(algorithm="ring")
        naive_group = dist.new_group(list(range(args.world)), backend="gloo")
        results = []
        for size_mb in args.sizes_mb:
            buf = torch.zeros(int(size_mb * 2**20) // 4)
            ops = {
                "allreduce": lambda b=buf: dist.all_reduce(b),
                "dear_ring": lambda b=buf: _dear_pair(comm, b),
                "naive_ring": lambda b=buf: _naive_pair(b, naive_group, dist, torch),
                "gloo_native": lambda b=buf: _native_pair(b, dist),
            }
            times = {name: [] for name in args.variants}
            start = time.perf_counter()
            for name in args.variants:  # one untimed warm-up each: connections, allocations
                ops[name]()
            for _ in range(_repeats(args, time.perf_counter() - start, torch, dist)):
                for name in args.variants:
                    if args.prime:  # see --prime
                        dist.barrier()
                        ops[name]()
                    dist.barrier()
                    start = time.perf_counter()
                    ops[name]()
                    times[name].append(time.perf_counter() - start)
            results.append({"size_mb": size_mb, "times": times})
            del buf
        comm.close()
    if args.rank == 0:
        Path(args.result_file).write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


def _repeats(args: argparse.Namespace, warmup_seconds: float, torch, dist) -> int:
    """At least --repeats, more for short operations (up to --min-seconds of measuring, at
    most 40): medians of many short runs are what survive a shared, noisy machine. Rank 0's
    count, so that every rank runs the same number."""
    wanted = args.repeats
    if warmup_seconds > 0:
        wanted = max(wanted, min(40, int(args.min_seconds / warmup_seconds) + 1))
    count = torch.tensor([wanted])
    dist.broadcast(count, src=0)
    return int(count.item())


def _dear_pair(comm, buf) -> None:
    comm.reduce_scatter(buf)
    comm.all_gather(buf).wait()  # the ring thread runs jobs in order


def _native_pair(buf, dist) -> None:
    n, rank = dist.get_world_size(), dist.get_rank()
    mine = buf.view(n, -1)[rank]
    dist.reduce_scatter_single(mine, buf)
    dist.all_gather_single(buf, mine)


def _naive_pair(buf, group, dist, torch) -> None:
    """The docs/design.md trial: send and receive posted together, the send first."""
    n, rank = dist.get_world_size(), dist.get_rank()
    chunks = buf.view(n, -1)
    scratch = torch.empty_like(chunks[0])
    nxt, prv = (rank + 1) % n, (rank - 1) % n
    for step in range(n - 1):
        ops = [dist.P2POp(dist.isend, chunks[(rank - step - 1) % n], group=group, group_peer=nxt),
               dist.P2POp(dist.irecv, scratch, group=group, group_peer=prv)]
        for work in dist.batch_isend_irecv(ops):
            work.wait()
        chunks[(rank - step - 2) % n].add_(scratch)
    for step in range(n - 1):
        ops = [dist.P2POp(dist.isend, chunks[(rank - step) % n], group=group, group_peer=nxt),
               dist.P2POp(dist.irecv, chunks[(rank - step - 1) % n], group=group, group_peer=prv)]
        for work in dist.batch_isend_irecv(ops):
            work.wait()


def _anomaly(args, torch, dist) -> list[dict]:
    """Two ranks exchange `size` bytes each way: which orderings and connections serialize."""
    other = dist.new_group([0, 1], backend="gloo")  # a second TCP connection between the pair
    peer = 1 - args.rank
    size_mb = args.sizes_mb[0]
    out, inp = torch.zeros(int(size_mb * 2**20) // 4), torch.empty(int(size_mb * 2**20) // 4)

    def one_way():
        (dist.isend(out, peer) if args.rank == 0 else dist.irecv(inp, peer)).wait()

    def send_first():
        for work in [dist.isend(out, peer), dist.irecv(inp, peer)]:
            work.wait()

    def recv_first():
        for work in [dist.irecv(inp, peer), dist.isend(out, peer)]:
            work.wait()

    def two_connections():
        send_group, recv_group = (None, other) if args.rank == 0 else (other, None)
        for work in [dist.isend(out, peer, group=send_group),
                     dist.irecv(inp, peer, group=recv_group)]:
            work.wait()

    raw = _raw_tcp_connection(args, dist)
    payload = bytes(out.numel() * 4)

    def raw_tcp_exchange():
        """Both directions at once over one plain TCP connection: is the link full duplex?"""
        sender = threading.Thread(target=raw.sendall, args=(payload,))
        sender.start()
        view, got = memoryview(bytearray(len(payload))), 0
        while got < len(payload):
            got += raw.recv_into(view[got:], len(payload) - got)
        sender.join()

    cases = {"one_way": one_way, "exchange_send_first": send_first,
             "exchange_recv_first": recv_first, "exchange_two_connections": two_connections,
             "raw_tcp_exchange_one_connection": raw_tcp_exchange}
    results = []
    for name, fn in cases.items():
        fn()
        times = []
        for _ in range(args.repeats):
            dist.barrier()
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        results.append({"case": name, "size_mb": size_mb, "median_s": statistics.median(times)})
    return results


def _raw_tcp_connection(args: argparse.Namespace, dist) -> socket.socket:
    """A plain TCP connection between ranks 0 and 1 (rank 0 listens on port + 1)."""
    if args.rank == 0:
        server = socket.create_server(("0.0.0.0", args.port + 1))
        dist.barrier()
        connection, _ = server.accept()
        server.close()
    else:
        dist.barrier()
        connection = socket.create_connection((args.master, args.port + 1))
    return connection


# ---------------------------------------------------------------- driver side

def _launch(network: str, world: int, args: argparse.Namespace, extra: list[str]) -> object:
    """Run `world` workers on the given network; return rank 0's JSON results."""
    handle, result_file = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    base = [sys.executable, str(Path(__file__).resolve()), "--worker", "--world", str(world),
            "--result-file", result_file, "--repeats", str(args.repeats),
            "--min-seconds", str(args.min_seconds),
            "--prime" if args.prime else "--no-prime", *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if network == "loopback":
        cmd = base + ["--master", "127.0.0.1", "--port", str(args.port)]
        procs = [subprocess.Popen(cmd + ["--rank", str(r)], env=env) for r in range(world)]
        _wait_all(procs)
    else:
        sys.path.insert(0, str(ROOT))
        from benchmarks.emulated_cluster import EmulatedCluster

        with EmulatedCluster(world, rate=args.rate, delay=args.delay) as cluster:
            cmd = base + ["--master", cluster.hosts[0].ip, "--port", str(args.port)]
            procs = [cluster.popen(r, cmd + ["--rank", str(r)], env=env) for r in range(world)]
            _wait_all(procs)
    results = json.loads(Path(result_file).read_text())
    os.unlink(result_file)
    return results


def _wait_all(procs: list[subprocess.Popen]) -> None:
    try:
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"a benchmark rank exited with {proc.returncode}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def _table(rows: list[dict], variants: list[str]) -> str:
    """Markdown: medians in seconds, and each pair's ratio to the all-reduce of the same run."""
    others = [v for v in variants if v != "allreduce"]
    head = ["network", "ranks", "MB", "reps", "all-reduce s"] + [f"{v} s (ratio)" for v in others]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        med = {v: statistics.median(row["times"][v]) for v in variants}
        cells = [row["network"], str(row["ranks"]), f"{row['size_mb']:g}",
                 str(len(row["times"]["allreduce"])), f"{med['allreduce']:.3f}"]
        cells += [f"{med[v]:.3f} ({med[v] / med['allreduce']:.2f}x)" for v in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", nargs="+", default=["shaped", "loopback"],
                        choices=["shaped", "loopback"])
    parser.add_argument("--ranks", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--sizes-mb", nargs="+", type=float, default=[4, 16, 64, 256])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=5, help="at least this many")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="repeat short sizes until about this long per size")
    parser.add_argument(
        "--prime", action=argparse.BooleanOptionalAction, default=True,
        help="run each operation once, untimed, right before each timed run: in training its "
             "connections are busy every iteration, while here they idle as the other variants "
             "run, and Linux restarts the congestion window of a connection idle for longer than "
             "its retransmission timeout, which would charge a slow start to whichever variant "
             "has a connection the others do not use (DeAR's second connection at 2 ranks)")
    parser.add_argument("--rate", default="1gbit")
    parser.add_argument("--delay", default="0ms")
    parser.add_argument("--port", type=int, default=29611)
    parser.add_argument("--out", help="write the markdown table here")
    parser.add_argument("--anomaly", action="store_true",
                        help="two ranks: one-way vs exchange orderings (first size only)")
    # worker-only arguments
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--master", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "allreduce" not in args.variants:
        args.variants.insert(0, "allreduce")
    if args.worker:
        _worker(args)
        return

    shared = ["--sizes-mb", *map(str, args.sizes_mb), "--variants", *args.variants]
    if args.anomaly:
        shared.append("--anomaly")
    rows, report = [], []
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for network in args.network:
        for world in ([2] if args.anomaly else args.ranks):
            for result in _launch(network, world, args, shared):
                result.update(network=network, ranks=world)
                rows.append(result)
                if args.anomaly:
                    mbps = result["size_mb"] / result["median_s"]
                    line = (f"{network:8s} {result['case']:32s} {result['median_s']:.3f} s  "
                            f"{mbps:7.1f} MB/s per direction")
                else:
                    med = {v: statistics.median(result["times"][v]) for v in args.variants}
                    line = f"{network:8s} ranks={world} {result['size_mb']:6g} MB  " + "  ".join(
                        f"{v}={med[v]:.3f}s ({med[v] / med['allreduce']:.2f}x)"
                        for v in args.variants)
                print(line, flush=True)
                report.append(line)
    text = "\n".join(report) if args.anomaly else _table(rows, args.variants)
    print(f"load average at end: {os.getloadavg()}")
    print("\n" + text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
