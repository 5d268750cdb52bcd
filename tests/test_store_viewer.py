"""``ftbench view``: read-only, local by default, every model output escaped; in Chromium, the live viewer (pick
two evaluations, see the flipped items) and the static export."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.index.comparison import compare_stored
from ftbench.harness.index.connection import StoreLocation, store_location
from ftbench.harness.index.indexing import add_results
from ftbench.harness.index.lookup import find_evaluations
from ftbench.harness.index.schema import opened_store
from ftbench.harness.viewer.export import StaticLinks, export_site
from ftbench.harness.viewer.server import ViewerServer, make_server
from ftbench.tasks.registry import recorded_task
from tests.devtools import FLAGS, Browser, chromium
from tests.records import make_record, write_results
from tests.store_records import PAYLOAD, pipeline_runs

ESCAPED = "&lt;img src=x onerror=&quot;document.body.setAttribute(&#x27;data-pwned&#x27;,&#x27;1&#x27;)&quot;&gt;"


@pytest.fixture
def location(tmp_path: Path) -> StoreLocation:
    location = store_location(tmp_path / "results" / "ftbench.db")
    runs = pipeline_runs(tmp_path / "results")
    with opened_store(location) as store:
        add_results(store, runs, recorded_task)
    return location


def _keys(location: StoreLocation, *names: str) -> list[str]:
    with opened_store(location, read_only=True) as store:
        return [find_evaluations(store, name, "countdown")[0].key for name in names]


@pytest.fixture
def server(location: StoreLocation) -> Iterator[ViewerServer]:
    served = make_server(location, port=0)
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()


def _url(server: ViewerServer, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_exported_pages_escape_model_output(location: StoreLocation, tmp_path: Path) -> None:
    with opened_store(location, read_only=True) as store:
        written = export_site(store, tmp_path / "site")
    pages = {path.name: path.read_text() for path in written}
    assert "index.html" in pages and "history-countdown-accuracy.html" in pages
    carrying = [name for name, text in pages.items() if ESCAPED in text]
    assert len(carrying) >= 2  # the evaluation's page and its comparisons
    for text in pages.values():
        assert "<img" not in text and 'onerror="' not in text
        assert text.count("<script>") == 1 and 'http-equiv="Content-Security-Policy"' in text
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)  # nothing to fetch


def test_server_is_read_only_and_local(server: ViewerServer, location: StoreLocation) -> None:
    assert server.server_address[0] == "127.0.0.1"
    home = urllib.request.urlopen(_url(server)).read().decode()
    assert "Compare two evaluations" in home and "Evaluations (8)" in home
    for method in ("POST", "PUT", "DELETE"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(_url(server), data=b"x", method=method))
        assert refused.value.code == 501
    rebound = urllib.request.Request(_url(server), headers={"Host": "attacker.example:80"})
    with pytest.raises(urllib.error.HTTPError) as misdirected:
        urllib.request.urlopen(rebound)
    assert misdirected.value.code == 421
    with pytest.raises(urllib.error.HTTPError) as unknown:
        urllib.request.urlopen(_url(server, "/eval?key=0123abcd"))
    assert unknown.value.code == 400 and "no evaluation" in unknown.value.read().decode()


def test_live_pages_follow_a_run_that_is_writing(server: ViewerServer, location: StoreLocation, tmp_path: Path) -> None:
    before = urllib.request.urlopen(_url(server, "/api/stamp")).read().decode()
    assert f'data-stamp="{before}"' in urllib.request.urlopen(_url(server)).read().decode()
    later = write_results(tmp_path / "later", [make_record("z", "final", "fp32", {"accuracy": [1.0, 1.0]})])
    with opened_store(location) as store:
        add_results(store, [later], recorded_task)
    assert urllib.request.urlopen(_url(server, "/api/stamp")).read().decode() != before
    assert "Evaluations (9)" in urllib.request.urlopen(_url(server)).read().decode()


def test_a_port_in_use_is_one_line(server: ViewerServer, location: StoreLocation) -> None:
    port = server.server_address[1]
    with pytest.raises(FtbenchError, match=f"port {port} on 127.0.0.1 is in use"):
        make_server(location, port=port)
    result = CliRunner().invoke(app, ["view", "--store", location.target, "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is in use; give another --port" in lines[0]
    with socket.create_connection(("127.0.0.1", port)):  # the running viewer is untouched
        pass


@pytest.mark.slow
def test_chromium_picks_two_evaluations_and_sees_the_flips(server: ViewerServer, location: StoreLocation,
                                                           tmp_path: Path) -> None:  # fmt: skip
    base, cand = _keys(location, "initial@fp32", "sft@nf4")
    with opened_store(location, read_only=True) as store:
        flips = compare_stored(store, base, cand, recorded_task).flips
    assert flips is not None
    browser = Browser(tmp_path / "profile")
    try:
        tab = browser.open(_url(server))
        browser.wait_for(tab, "document.readyState === 'complete' && !!document.querySelector('form')")
        browser.evaluate(
            tab,
            f"document.querySelector('select[name=a]').value = '{base}';"
            f"document.querySelector('select[name=b]').value = '{cand}';"
            "document.querySelector('form button').click(); true",
        )
        browser.wait_for(tab, "location.pathname === '/compare' && document.readyState === 'complete'")
        rows = browser.evaluate(tab, "[...document.querySelectorAll('#items tbody tr')].map(r => "
                                     "[r.dataset.kind, r.cells[0].textContent, r.cells[4].textContent])")  # fmt: skip
        assert [int(doc) for kind, doc, _ in rows if kind == "gained"] == flips.gained
        assert [int(doc) for kind, doc, _ in rows if kind == "lost"] == flips.lost
        assert {kind for kind, _, _ in rows[: len(flips.gained) + len(flips.lost)]} == {"gained", "lost"}
        assert PAYLOAD in [response for _, _, response in rows]  # shown as text ...
        assert browser.evaluate(tab, "document.images.length + document.querySelectorAll('[onerror]').length") == 0
        assert browser.evaluate(tab, "document.body.hasAttribute('data-pwned')") is False  # ... never run
        browser.evaluate(tab, "const box = document.querySelector('[data-filter=items]'); box.value = 'answer 17';"
                              "box.dispatchEvent(new Event('input')); true")  # fmt: skip
        assert browser.evaluate(tab, "document.getElementById('items-count').textContent") == "1"
    finally:
        browser.close()


@pytest.mark.slow
def test_chromium_shows_the_exported_comparison(location: StoreLocation, tmp_path: Path) -> None:
    base, cand = _keys(location, "initial@fp32", "sft@nf4")
    with opened_store(location, read_only=True) as store:
        export_site(store, tmp_path / "site", [(base, cand)])
    page = tmp_path / "site" / str(StaticLinks({(base, cand)}).comparison(base, cand))
    dom = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert dom.count('data-kind="gained"') == 8 and dom.count('data-kind="lost"') == 4
    assert ESCAPED.replace("&quot;", '"').replace("&#x27;", "'") in dom and "<img" not in dom
    assert 'data-pwned="1"' not in dom and "<body data-pwned" not in dom
