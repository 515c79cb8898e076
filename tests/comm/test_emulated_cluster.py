"""The emulated cluster builds real namespaces with shaped links and removes them on exit, on
SIGTERM, and (through cleanup_stale) after SIGKILL. Needs root and iproute2."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.emulated_cluster import EmulatedCluster, cleanup_stale, netem_available

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None,
    reason="network namespaces need root and iproute2")

_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from benchmarks.emulated_cluster import EmulatedCluster
with EmulatedCluster(2, rate="100mbit") as cluster:
    print(" ".join(h.netns for h in cluster.hosts), flush=True)
    time.sleep(120)
"""


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _start_holder() -> tuple[subprocess.Popen, list[str]]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT.format(root=root)],
                            stdout=subprocess.PIPE, text=True)
    names = proc.stdout.readline().split()
    assert len(names) == 2 and set(names) <= _namespaces()
    return proc, names


_ECHO_SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 6001)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    b = c.recv(64)
    if not b: break
    c.sendall(b)
"""

_ECHO_CLIENT = """
import socket, statistics, time
c = socket.create_connection(("10.77.0.1", 6001)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
times = []
for _ in range(40):
    t = time.perf_counter(); c.sendall(b"x"); c.recv(64); times.append(time.perf_counter() - t)
print(statistics.median(times) * 1e3)
"""


def _round_trip_ms(cluster: EmulatedCluster) -> float:
    server = cluster.popen(0, [sys.executable, "-c", _ECHO_SERVER], stdout=subprocess.PIPE,
                           text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        client = cluster.popen(1, [sys.executable, "-c", _ECHO_CLIENT], stdout=subprocess.PIPE,
                               text=True)
        return float(client.communicate(timeout=60)[0])
    finally:
        server.kill()
        server.wait()


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def test_the_delay_line_adds_latency_on_each_uplink_and_keeps_the_rate():
    with EmulatedCluster(2, rate="100mbit") as plain:
        base = _round_trip_ms(plain)
    with EmulatedCluster(2, rate="100mbit", delay="1ms", latency="delay-line") as cluster:
        taps = {h.host_veth for h in cluster.hosts}
        assert taps <= _links()
        qdiscs = subprocess.run(["ip", "netns", "exec", cluster.hosts[1].netns, "tc", "qdisc",
                                 "show", "dev", "eth0"], capture_output=True, text=True).stdout
        assert "tbf" in qdiscs and "100Mbit" in qdiscs
        delayed = _round_trip_ms(cluster)
    # a round trip crosses two uplinks, each holding every frame 1 ms
    assert delayed >= 2.0 and delayed > base, (base, delayed)
    assert not taps & _links()
    assert not {h.netns for h in cluster.hosts} & _namespaces()


def test_netem_latency_works_or_is_refused_clearly():
    if not netem_available():
        with pytest.raises(RuntimeError, match="netem"), \
                EmulatedCluster(2, rate="100mbit", delay="1ms", latency="netem"):
            pass
        return
    with EmulatedCluster(2, rate="100mbit", delay="1ms", latency="netem") as cluster:
        qdiscs = subprocess.run(["ip", "netns", "exec", cluster.hosts[1].netns, "tc", "qdisc",
                                 "show", "dev", "eth0"], capture_output=True, text=True).stdout
        assert "netem" in qdiscs and "tbf" in qdiscs


def test_bad_latency_settings_are_refused_before_anything_is_built():
    with pytest.raises(ValueError, match="delay"):
        EmulatedCluster(2, delay="soon")
    with pytest.raises(ValueError, match="latency"):
        EmulatedCluster(2, delay="1ms", latency="carrier-pigeon")


def test_shaped_hosts_exist_inside_and_are_gone_after_exit():
    with EmulatedCluster(2, rate="100mbit") as cluster:
        names = [h.netns for h in cluster.hosts]
        assert set(names) <= _namespaces()
        qdiscs = subprocess.run(["ip", "netns", "exec", names[1], "tc", "qdisc", "show",
                                 "dev", "eth0"], capture_output=True, text=True).stdout
        assert "tbf" in qdiscs and "100Mbit" in qdiscs
        ping = cluster.popen(1, [sys.executable, "-c",
                                 "import socket; s = socket.socket(); s.settimeout(5); "
                                 "s.connect_ex(('10.77.0.1', 9)); print('ok')"],
                             stdout=subprocess.PIPE, text=True)
        assert ping.communicate(timeout=30)[0].strip() == "ok"
    assert not set(names) & _namespaces()


def test_sigterm_tears_down():
    proc, names = _start_holder()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert not set(names) & _namespaces()


def test_cleanup_stale_after_sigkill():
    proc, names = _start_holder()
    proc.kill()
    proc.wait(timeout=30)
    time.sleep(0.2)
    assert set(names) <= _namespaces()  # SIGKILL leaves them behind...
    removed = cleanup_stale()
    assert set(names) <= set(removed)  # ...and cleanup_stale removes them (their owner is dead)
    assert not set(names) & _namespaces()
