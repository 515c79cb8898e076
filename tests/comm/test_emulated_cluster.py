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

from benchmarks.emulated_cluster import EmulatedCluster, cleanup_stale

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


def _netem_available() -> bool:
    probe = "wowrnetemprobe"
    subprocess.run(["ip", "netns", "add", probe], check=True)
    try:
        return subprocess.run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo",
                               "root", "netem", "delay", "1ms"],
                              capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe])


def test_latency_is_added_by_netem_or_refused_clearly():
    if not _netem_available():
        with pytest.raises(RuntimeError, match="netem"), \
                EmulatedCluster(2, rate="100mbit", delay="1ms"):
            pass
        return
    with EmulatedCluster(2, rate="100mbit", delay="1ms") as cluster:
        qdiscs = subprocess.run(["ip", "netns", "exec", cluster.hosts[1].netns, "tc", "qdisc",
                                 "show", "dev", "eth0"], capture_output=True, text=True).stdout
        assert "netem" in qdiscs and "tbf" in qdiscs


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
