"""A userspace delay line between pairs of tap devices: latency where `tc netem` is missing.

Why: the emulated cluster shapes bandwidth with `tbf`, but adding latency needs a qdisc that
holds packets back (netem, or fq/etf with departure times), and some kernels (this
container's among them) are built without any. Here each emulated host's interface is a tap
device instead of a veth: frames it sends are read by this process and written, `delay`
later, into a second tap on the bridge; frames from the bridge go the other way at once. So
every frame pays `delay` once, on its sender's uplink, as netem on the uplink would add; `tbf`
still shapes both taps. Taps use a 64 KB MTU so that one frame carries a TCP segment of up to
64 KB and the delay line handles a few thousand frames per second, not tens of thousands.

Run by `EmulatedCluster` (it creates the taps, starts this as a child, waits for "ready",
then moves the host-side taps into their namespaces):

    python -m benchmarks.delay_line --delay-ms 1 HOSTTAP:BRIDGETAP [...]

It exits when its parent does, and on SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import os
import selectors
import signal
import struct
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536 + 18
TAP_MTU = 65000


def open_tap(name: str) -> int:
    """Attach to the existing tap `name` (created with `ip tuntap add ... mode tap`)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class _Direction:
    """Frames read from one tap, written to another `delay` seconds later, in order."""

    def __init__(self, source: int, sink: int, delay: float) -> None:
        self.source, self.sink, self.delay = source, sink, delay
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()

    def read(self, now: float) -> None:
        while True:
            try:
                frame = os.read(self.source, MAX_FRAME)
            except BlockingIOError:
                return
            if self.delay <= 0 and not self.queue:
                self._write(frame)
            else:
                self.queue.append((now + self.delay, frame))

    def release(self, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            self._write(self.queue.popleft()[1])

    def _write(self, frame: bytes) -> None:
        # a full sink queue or a tap that went away loses the frame, as a full switch port would
        with contextlib.suppress(OSError):
            os.write(self.sink, frame)


def run(pairs: list[tuple[str, str]], delay_s: float) -> None:
    """Forward frames between each (host tap, bridge tap) pair until the parent exits."""
    parent = os.getppid()
    # select(2) waits with microsecond precision; epoll, the default, rounds up to whole
    # milliseconds, which would add up to 1 ms to every 0.1 ms delay
    selector = selectors.SelectSelector()
    directions: dict[int, _Direction] = {}
    for host_tap, bridge_tap in pairs:
        host_fd, bridge_fd = open_tap(host_tap), open_tap(bridge_tap)
        directions[host_fd] = _Direction(host_fd, bridge_fd, delay_s)  # uplink: delayed
        directions[bridge_fd] = _Direction(bridge_fd, host_fd, 0.0)
        selector.register(host_fd, selectors.EVENT_READ)
        selector.register(bridge_fd, selectors.EVENT_READ)
    print("ready", flush=True)
    while os.getppid() == parent:
        now = time.monotonic()
        due = min((d.queue[0][0] for d in directions.values() if d.queue), default=now + 0.5)
        for key, _ in selector.select(max(0.0, min(due - now, 0.5))):
            directions[key.fd].read(time.monotonic())
        now = time.monotonic()
        for direction in directions.values():
            direction.release(now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, required=True,
                        help="one-way latency added to frames leaving each host")
    parser.add_argument("pairs", nargs="+", metavar="HOSTTAP:BRIDGETAP")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    run([tuple(p.split(":", 1)) for p in args.pairs], args.delay_ms / 1e3)


if __name__ == "__main__":
    main()
