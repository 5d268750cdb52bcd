"""A private PostgreSQL server for tests: Debian's ``postgresql`` binaries, a fresh cluster in a temporary
folder, listening on 127.0.0.1 at a free port, stopped and removed afterwards. As root (CI), the server runs as
the package's ``postgres`` user, which PostgreSQL requires."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest installed server's ``bin`` folder (``/usr/lib/postgresql/N/bin``), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server(parent: Path) -> Iterator[str]:
    """Start a server and yield the URL of its ``postgres`` database (user ``ftbench``, trusted on 127.0.0.1)."""
    binaries = postgres_bin()
    assert binaries, "PostgreSQL is needed for this test: .ci/run installs Debian's postgresql package"
    root = Path(tempfile.mkdtemp(prefix="ftbench-pg-", dir=None if os.geteuid() == 0 else parent))
    data, port = root / "data", _free_port()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    try:
        subprocess.run(
            _as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", "ftbench", "--auth=trust", "-E", "UTF8"]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                             "-w", "-t", "60", "start"]),
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        yield f"postgresql://ftbench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
