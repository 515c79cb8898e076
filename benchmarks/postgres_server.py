"""A throw-away PostgreSQL server from the machine's own binaries, for tests and harnesses.

Here (not in a test conftest) because two kinds of caller start one: the session-store tests
(tests/agents/conftest.py, on loopback) and the multi-node harness (`multinode.py`, inside the
head's network namespace, listening on the head's address so every node reaches it). The
binaries come from PATH or, where Debian's `postgresql` package put them off PATH, from
/usr/lib/postgresql/<version>/bin (scripts/install.sh dev installs that package as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def postgres_binaries() -> tuple[str, str] | None:
    """(initdb, pg_ctl) from PATH, else from the newest /usr/lib/postgresql/*/bin; None if absent."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if versions:
        return str(versions[-1]), str(versions[-1].parent / "pg_ctl")
    return None


class PostgresServer:
    """A throw-away PostgreSQL server that a test may stop and start again, as an outage would.

    listen: the address it listens on (loopback by default); any other address also trusts
    connections from the networks it is on (`samenet`), so other nodes of an emulated cluster
    reach it. netns: a network namespace to run it in (the head's, for the multi-node harness).
    It also listens on a unix socket in its folder, which every namespace of this machine can
    reach (`local_url`): a test outside the cluster reads the database through it.
    """

    def __init__(self, initdb: str, pg_ctl: str, *, listen: str = "127.0.0.1",
                 netns: str | None = None) -> None:
        self.pg_ctl, self.listen, self.as_user = pg_ctl, listen, []
        self.in_netns = ["ip", "netns", "exec", netns] if netns else []
        self.root = tempfile.mkdtemp(prefix="wow-pg-")
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        with socket.socket() as s:  # free here; a fresh namespace has every port free
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data = f"{self.root}/data"
        subprocess.run([*self.as_user, initdb, "-D", self.data, "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True)
        if listen != "127.0.0.1":
            with open(f"{self.data}/pg_hba.conf", "a") as hba:
                hba.write("host all all samenet trust\n")
        self.url = f"postgresql+psycopg://postgres@{listen}:{self.port}"

    def local_url(self, database: str = "postgres") -> str:
        """A URL through the unix socket (reachable from this machine, whatever its namespace)."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}&port={self.port}"

    def start(self) -> None:
        subprocess.run([*self.in_netns, *self.as_user, self.pg_ctl, "-D", self.data,
                        "-l", f"{self.root}/log", "-w",
                        "-o", f"-p {self.port} -k {self.root} -c listen_addresses={self.listen} "
                        "-c fsync=off", "start"], check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"],
                       capture_output=True)

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL on the listening address."""
        import psycopg

        with psycopg.connect(host=self.root, port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"{self.url}/{name}"

    def remove(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
