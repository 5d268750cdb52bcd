"""A minimal driver of headless Chromium over the DevTools protocol, through ``--remote-debugging-pipe`` (NUL
separated JSON on file descriptors 3 and 4): open a page, run script in it, wait for a condition."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
"""The flags of every headless run in the tests (as the report's browser test uses them)."""


def chromium() -> str:
    """The path of Debian's Chromium (`make browser` installs it)."""
    found = shutil.which("chromium")
    assert found, "chromium is needed for this test: `make test` installs Debian's chromium package"
    return found


def _above_4(fd: int) -> int:
    """``fd`` moved to a number above 4, so that redirecting onto 3 and 4 cannot overwrite it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium, driven over its debugging pipe."""

    def __init__(self, profile: Path) -> None:
        commands, self._to_browser = map(_above_4, os.pipe())
        self._from_browser, replies = map(_above_4, os.pipe())
        wrapper = f'exec "$0" "$@" 3<&{commands} 4>&{replies}'  # the pipe ends become the browser's fds 3 and 4
        self.process = subprocess.Popen(
            ["bash", "-c", wrapper, chromium(), *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}"],
            pass_fds=(commands, replies), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(commands)
        os.close(replies)
        self._buffer, self._next = b"", 0

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "Chromium did not answer in time"
            chunk = os.read(self._from_browser, 1 << 16)
            assert chunk, "Chromium closed its debugging pipe"
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and return its result (events in between are dropped)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                assert "error" not in reply, reply["error"]
                return dict(reply["result"])

    def open(self, url: str) -> str:
        """Open ``url`` in a new tab; returns the tab's session."""
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        return str(self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])

    def evaluate(self, session: str, expression: str) -> Any:
        """The value of a script expression in the tab (None while the page is changing)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        return None if "exceptionDetails" in result else result["result"].get("value")

    def wait_for(self, session: str, condition: str, seconds: float = 30) -> None:
        """Wait until ``condition`` (a script expression) holds in the tab."""
        deadline = time.monotonic() + seconds
        while self.evaluate(session, condition) is not True:
            assert time.monotonic() < deadline, f"timed out waiting for {condition}"
            time.sleep(0.1)

    def close(self) -> None:
        """Stop the browser (asked over the pipe; terminated if it does not stop)."""
        try:
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.terminate()
            self.process.wait(30)
        os.close(self._to_browser)
        os.close(self._from_browser)
