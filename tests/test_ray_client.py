"""``--cluster ray://HOST:PORT`` from a plain install: a Ray head started here on 127.0.0.1, reached through Ray's
client at the address the README documents, then stopped (only the processes this test started)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.evaluation.cluster import connect_cluster

RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, raylet: Path, deadline: float) -> None:
    """Until the client server listens on ``port`` and the head's raylet has opened its socket.

    The head starts its client server before its raylet; a connection that comes in between gets a server process
    that cannot reach the node, and fails with "Initialization failure".
    """
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                if raylet.exists():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not start its client server on {port} and its raylet at {raylet}")


def _client_logs(temp: str) -> str:
    """The tail of each client server log the head wrote, for a failed connection's message."""
    logs = sorted(Path(temp).glob("session_latest/logs/ray_client_server*"))
    tails = ("\n".join(log.read_text(errors="replace").splitlines()[-15:]) for log in logs)
    return "\n".join(f"--- {log.name}\n{tail}" for log, tail in zip(logs, tails, strict=True))


@pytest.fixture
def ray_head() -> Iterator[tuple[str, str]]:
    """A one-CPU Ray head on 127.0.0.1 with its client server; yields its ``ray://`` address and its temp folder."""
    gcs, client = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    command = [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}"]
    command += [f"--ray-client-server-port={client}", "--num-cpus=1", "--include-dashboard=false"]
    command += ["--disable-usage-stats", f"--temp-dir={temp}"]
    # The head's client server gives each connection's server process 30 s to start by default; a loaded machine
    # (a CI job beside others) can take longer, and the connection then fails with "Initialization failure".
    env = os.environ | {"RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "180"}
    head = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env
    )
    try:
        _wait_for(client, Path(temp) / "session_latest" / "sockets" / "raylet", time.time() + 120)
        yield f"ray://127.0.0.1:{client}", temp
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head's own process group: nothing anyone else started
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow  # about 30 s: the head takes 10-15 s to start, its client server a few more per connection
def test_a_ray_address_connects_through_rays_client(ray_head: tuple[str, str]) -> None:
    import ray

    address, temp = ray_head
    # On a loaded machine the head's per-connection server can fail to start in time ("Initialization failure");
    # a second connection must then succeed, as a user's retry would.
    try:
        cluster = connect_cluster(address, "auto")
    except FtbenchError as first:
        if "Initialization failure" not in str(first):
            raise AssertionError(f"{first}\n{_client_logs(temp)}") from None
        time.sleep(5)
        try:
            cluster = connect_cluster(address, "auto")
        except FtbenchError as exc:
            raise AssertionError(f"{first}\nthen: {exc}\n{_client_logs(temp)}") from None
    try:
        assert cluster.device == "cpu" and ray.cluster_resources()["CPU"] == 1
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
    finally:
        cluster.close()
