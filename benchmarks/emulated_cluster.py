"""An emulated cluster on one machine: N network namespaces on a bridge, links shaped by `tc`.

Why: the interesting regime for DeAR (and for the survey's comparisons) is communication-bound
training on a real network, and this machine has none. Each "host" is a network namespace with
one interface named `eth0` (the same name everywhere, so `GLOO_SOCKET_IFNAME=eth0` works on
every rank, docs/design.md), joined to a private bridge by a veth pair. Both directions of every
veth are shaped with a token bucket (`tbf`), so each host has `rate` up and `rate` down, like a
host on a switch. An optional delay adds one-way latency on each host's uplink: with `netem`
where the kernel has it, otherwise with a userspace delay line (`delay_line.py`), for which the
hosts' links are tap devices instead of veths.

Needs root (ip netns, veth, bridge, tc). Traffic stays between the namespaces created here.
Teardown runs on normal exit, on exceptions, on Ctrl-C and on SIGTERM; names carry a per-run
suffix so parallel runs never collide, and `cleanup_stale()` removes leftovers of a run that
was killed with SIGKILL.

    with EmulatedCluster(4, rate="1gbit") as cluster:
        procs = [cluster.popen(i, [sys.executable, "worker.py"]) for i in range(4)]

Command line: `python benchmarks/emulated_cluster.py --hosts 4 --check` builds a cluster,
measures one TCP stream between host 0 and host 1, and tears it down.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

NAME_PREFIX = "wowr"  # every namespace, bridge and veth of this harness starts with it


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _tc(*args: str, netns: str | None = None) -> None:
    cmd = ["tc", *args] if netns is None else ["ip", "netns", "exec", netns, "tc", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@dataclass
class Host:
    """One emulated host: its namespace, address and host-side veth."""

    index: int
    netns: str
    ip: str
    host_veth: str
    interface: str = "eth0"


@dataclass
class EmulatedCluster:
    """N namespaces on one bridge; `rate` shapes each host's uplink and downlink.

    rate: a tc rate ("1gbit", "10gbit") or None for unshaped veths.
    delay: one-way latency added on each host's uplink ("0ms" for none; "0.1ms", "1ms").
    latency: how the delay is added: "netem", "delay-line" (taps and `delay_line.py`), or
        "auto": netem if the kernel has it, else the delay line.
    burst/limit: the token bucket's burst and queue, in bytes. The default burst is what tbf
    needs to reach `rate` with the kernel's timer granularity; the queue is one bandwidth-delay
    product of a few milliseconds, like a switch port buffer.
    """

    n_hosts: int
    rate: str | None = "1gbit"
    delay: str = "0ms"
    latency: str = "auto"
    burst: int = 256 * 1024
    limit: int = 2 * 1024 * 1024
    subnet: str = "10.77.0"
    hosts: list[Host] = field(default_factory=list)
    _suffix: str = ""
    _up: bool = False
    _delay_line: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.n_hosts <= 200:
            raise ValueError(f"n_hosts must be in 1..200, got {self.n_hosts}")
        if self.latency not in ("auto", "netem", "delay-line"):
            raise ValueError(f"latency must be 'auto', 'netem' or 'delay-line', "
                             f"got {self.latency!r}")
        self.delay_s = parse_delay(self.delay)  # a bad delay fails before anything is built
        self._suffix = str(os.getpid())  # names stay under 15 chars; see cleanup_stale

    @property
    def bridge(self) -> str:
        return f"{NAME_PREFIX}br{self._suffix}"

    def __enter__(self) -> EmulatedCluster:
        self._install_teardown_handlers()
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def _build(self) -> None:
        self._up = True
        if self.delay_s > 0 and self.latency == "auto":
            self.latency = "netem" if netem_available() else "delay-line"
        taps = self.delay_s > 0 and self.latency == "delay-line"
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("link", "set", self.bridge, "up")
        for i in range(self.n_hosts):
            host = Host(
                index=i,
                netns=f"{NAME_PREFIX}{self._suffix}-{i}",
                ip=f"{self.subnet}.{i + 1}",
                host_veth=f"{NAME_PREFIX}{self._suffix}v{i}",
            )
            self.hosts.append(host)
            _ip("netns", "add", host.netns)
            if not taps:
                _ip("link", "add", host.host_veth, "type", "veth", "peer", "name", "eth0",
                    "netns", host.netns)
        if taps:
            self._start_delay_line()
        for host in self.hosts:
            _ip("link", "set", host.host_veth, "master", self.bridge)
            _ip("link", "set", host.host_veth, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
            self._shape(host)

    def _start_delay_line(self) -> None:
        """Each host's link as two taps joined by the delay line; the host's tap then moves
        into its namespace as eth0 (the delay line keeps its file descriptor)."""
        from benchmarks.delay_line import TAP_MTU

        pairs = []
        for host in self.hosts:
            for tap in (self._host_tap(host), host.host_veth):
                _ip("tuntap", "add", "dev", tap, "mode", "tap")
                _ip("link", "set", tap, "mtu", str(TAP_MTU))
            pairs.append(f"{self._host_tap(host)}:{host.host_veth}")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._delay_line = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.delay_line", "--delay-ms",
             str(self.delay_s * 1e3), *pairs], cwd=root, stdout=subprocess.PIPE, text=True)
        if self._delay_line.stdout.readline().strip() != "ready":
            raise RuntimeError("the delay line (benchmarks/delay_line.py) did not start; "
                               "see its error above")
        for host in self.hosts:
            _ip("link", "set", self._host_tap(host), "netns", host.netns)
            _ip("-n", host.netns, "link", "set", self._host_tap(host), "name", "eth0")

    def _host_tap(self, host: Host) -> str:
        """The host's tap before it moves into its namespace as eth0 (delay line only)."""
        return f"{NAME_PREFIX}{self._suffix}t{host.index}"

    def _shape(self, host: Host) -> None:
        """Uplink: egress of eth0 in the namespace; downlink: egress of the bridge-side veth."""
        if self.rate is None:
            return
        tbf = ["tbf", "rate", self.rate, "burst", str(self.burst), "limit", str(self.limit)]
        if self.delay_s > 0 and self.latency == "netem":
            try:
                _tc("qdisc", "add", "dev", "eth0", "root", "handle", "1:", "netem",
                    "delay", self.delay, netns=host.netns)
            except subprocess.CalledProcessError as error:
                # Some kernels (this container's among them) are built without sch_netem.
                raise RuntimeError(f"cannot add {self.delay} of latency: tc netem failed "
                                   f"({error.stderr.strip()}); is sch_netem in the kernel?"
                                   ) from error
            _tc("qdisc", "add", "dev", "eth0", "parent", "1:1", "handle", "10:", *tbf,
                netns=host.netns)
        else:
            _tc("qdisc", "add", "dev", "eth0", "root", *tbf, netns=host.netns)
        _tc("qdisc", "add", "dev", host.host_veth, "root", *tbf)

    def teardown(self) -> None:
        """Delete every namespace, veth and the bridge of this run; safe to call twice."""
        if not self._up:
            return
        self._up = False
        if self._delay_line is not None:
            self._delay_line.terminate()
            self._delay_line.wait()
        for host in self.hosts:
            kill_netns_processes(host.netns)  # a deleted namespace lives on in its processes
            _ip("netns", "del", host.netns, check=False)  # takes its veth pair with it
            _ip("link", "del", host.host_veth, check=False)
            if self._delay_line is not None:  # a tap the build failed to move is still here
                _ip("link", "del", self._host_tap(host), check=False)
        _ip("link", "del", self.bridge, check=False)

    def _install_teardown_handlers(self) -> None:
        atexit.register(self.teardown)
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; atexit still runs

        def on_term(signum: int, frame: object) -> None:
            # A second signal must not interrupt the teardown half-way (`timeout` and process
            # groups can deliver more than one), so ignore them from here on.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.teardown()
            raise KeyboardInterrupt(f"signal {signum}")

        # SIGTERM (a CI job cancelled, `kill`) must not leave namespaces behind; Ctrl-C is a
        # KeyboardInterrupt, which __exit__ already handles.
        signal.signal(signal.SIGTERM, on_term)

    def exec_argv(self, index: int, argv: list[str]) -> list[str]:
        """`argv` run inside host `index`'s namespace."""
        return ["ip", "netns", "exec", self.hosts[index].netns, *argv]

    def popen(self, index: int, argv: list[str], env: dict[str, str] | None = None,
              **kwargs: object) -> subprocess.Popen:
        """Start `argv` on host `index` with GLOO_SOCKET_IFNAME set to its interface."""
        full_env = dict(os.environ if env is None else env)
        full_env.setdefault("GLOO_SOCKET_IFNAME", self.hosts[index].interface)
        return subprocess.Popen(self.exec_argv(index, argv), env=full_env, **kwargs)


def parse_delay(text: str) -> float:
    """tc's time syntax ("0", "0ms", "100us", "0.5ms", "1s") in seconds."""
    match = re.fullmatch(r"([\d.]+)\s*(us|ms|s)?", text.strip())
    if not match:
        raise ValueError(f"delay must look like '0.1ms', '100us' or '1ms', got {text!r}")
    return float(match.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1e-3}[match.group(2)]


def kill_netns_processes(netns: str, grace_s: float = 5.0) -> list[int]:
    """SIGTERM every process in `netns`, then SIGKILL what is still there after `grace_s`
    (a Ray node's daemons, a worker a test left). Returns the process ids it found."""
    def pids() -> list[int]:
        out = _ip("netns", "pids", netns, check=False).stdout.split()
        return [int(pid) for pid in out if pid.isdigit() and int(pid) != os.getpid()]

    found = pids()
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while pids() and time.monotonic() < deadline:
            time.sleep(0.1)
    return found


def netem_available() -> bool:
    """Whether this kernel can add a netem qdisc (tried in a throwaway namespace)."""
    probe = f"{NAME_PREFIX}{os.getpid()}-probe"
    _ip("netns", "add", probe)
    try:
        done = subprocess.run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo",
                               "root", "netem", "delay", "1ms"], capture_output=True)
        return done.returncode == 0
    finally:
        _ip("netns", "del", probe, check=False)


def cleanup_stale() -> list[str]:
    """Remove namespaces and links this harness left behind (a run killed with SIGKILL)."""
    removed = []
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(NAME_PREFIX) and not _owner_alive(name):
            kill_netns_processes(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(NAME_PREFIX) and not _owner_alive(name):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def _owner_alive(name: str) -> bool:
    """Names embed the creating process id; a run still alive keeps its namespaces."""
    digits = re.match(r"\D*(\d+)", name[len(NAME_PREFIX):])
    return bool(digits) and os.path.exists(f"/proc/{digits.group(1)}")


def _iperf_like(cluster: EmulatedCluster, seconds: float = 3.0) -> float:
    """MB/s of one TCP stream from host 1 to host 0, with Python sockets (no iperf needed)."""
    server = cluster.popen(0, [sys.executable, "-c", _SINK.format(port=5999)],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    client = cluster.popen(1, [sys.executable, "-c", _SOURCE.format(
        ip=cluster.hosts[0].ip, port=5999, seconds=seconds)])
    client.wait()
    out, _ = server.communicate(timeout=30)
    return float(out.strip())


_SINK = """
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port})); s.listen(1); c, _ = s.accept()
n, t0 = 0, None
while True:
    b = c.recv(1 << 20)
    if not b: break
    if t0 is None: t0 = time.perf_counter()
    n += len(b)
print(n / (time.perf_counter() - t0) / 1e6)
"""

_SOURCE = """
import socket, time
c = socket.create_connection(("{ip}", {port})); buf = b"x" * (1 << 20)
end = time.perf_counter() + {seconds}
while time.perf_counter() < end: c.sendall(buf)
c.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--rate", default="1gbit")
    parser.add_argument("--delay", default="0ms")
    parser.add_argument("--latency", default="auto", choices=["auto", "netem", "delay-line"])
    parser.add_argument("--check", action="store_true", help="measure one TCP stream")
    parser.add_argument("--cleanup", action="store_true", help="remove stale namespaces")
    args = parser.parse_args()
    if args.cleanup:
        print("removed:", cleanup_stale())
        return
    with EmulatedCluster(args.hosts, rate=args.rate, delay=args.delay,
                         latency=args.latency) as cluster:
        print("hosts:", [(h.netns, h.ip) for h in cluster.hosts], "latency:", cluster.latency)
        if args.check:
            print(f"one TCP stream host1 -> host0: {_iperf_like(cluster):.1f} MB/s")


if __name__ == "__main__":
    main()
