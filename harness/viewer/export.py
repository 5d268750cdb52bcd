"""``ftbench view --export DIR``: the viewer's pages as static files (a CI artifact): the home page, every
evaluation, every metric's history, and the comparisons of each evaluation with the one before it (same task and
precision, in time order) plus any pairs asked for.

The pages go only into a new or empty folder, or one an earlier export wrote (it holds ``MARKER``): a user's own
files are never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ftbench.harness.core.errors import FtbenchError
from ftbench.harness.core.store import write_atomic
from ftbench.harness.index.connection import Store
from ftbench.harness.index.lookup import find_evaluations, list_evaluations
from ftbench.harness.viewer.pages import comparison_page, evaluation_page, history_page, home_page

MARKER = ".ftbench-export"
"""The file an export leaves in its folder, so that a later export may write there again."""


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


class StaticLinks:
    """Links between exported pages: file names in one folder."""

    def __init__(self, compared: set[tuple[str, str]]) -> None:
        self.compared = compared

    def home(self) -> str:
        """The home page."""
        return "index.html"

    def evaluation(self, key: str) -> str:
        """One evaluation's samples."""
        return f"eval-{_safe(key)}.html"

    def comparison(self, first: str, second: str) -> str | None:
        """Two evaluations compared, when exported."""
        return f"compare-{_safe(first)}-{_safe(second)}.html" if (first, second) in self.compared else None

    def history(self, task: str, metric: str) -> str | None:
        """A metric's history."""
        return f"history-{_safe(task)}-{_safe(metric)}.html"


def default_pairs(store: Store) -> list[tuple[str, str]]:
    """Each evaluation against the one before it of the same task and precision, in time order (baseline first)."""
    pairs: list[tuple[str, str]] = []
    last: dict[tuple[str, str], str] = {}
    for item in reversed(list_evaluations(store)):  # oldest first
        group = (item.task, item.precision)
        if group in last and last[group] != item.key:
            pairs.append((last[group], item.key))
        last[group] = item.key
    return pairs


def check_export_folder(out: Path) -> None:
    """Refuse a folder the pages may not go into: the file system's root, a file, or a non-empty folder that no
    earlier export wrote.

    Raises:
        FtbenchError: naming the folder and what to give instead.
    """
    place = out.resolve()
    if place == Path(place.anchor):
        raise FtbenchError(f"--export {out} is the file system's root; give a new or empty folder for the pages")
    if place.exists() and not place.is_dir():
        raise FtbenchError(f"--export {out} is a file; give a new or empty folder for the pages")
    if place.is_dir() and not (place / MARKER).is_file() and any(place.iterdir()):
        raise FtbenchError(
            f"--export {out} is not empty and holds no earlier export ({MARKER}); give a new or empty folder"
        )


def export_site(store: Store, out: Path, pairs: Sequence[tuple[str, str]] = ()) -> list[Path]:
    """Write the pages into ``out`` and return their paths; ``pairs`` (names as ``compare`` takes them) are
    compared besides the default ones.

    Raises:
        FtbenchError: ``out`` is refused by ``check_export_folder`` or a pair names an unknown evaluation (both
            checked before anything is written).
    """
    check_export_folder(out)
    asked = [(find_evaluations(store, a)[0].key, find_evaluations(store, b)[0].key) for a, b in pairs]
    compared = list(dict.fromkeys([*asked, *default_pairs(store)]))
    links = StaticLinks(set(compared))
    pages: dict[str, str] = {links.home(): home_page(store, links, None, compared)}
    evaluations = list_evaluations(store)
    for item in {i.key: i for i in evaluations}.values():
        pages[links.evaluation(item.key)] = evaluation_page(store, item.key, links)
    metrics = store.execute(
        "SELECT DISTINCT e.task, m.metric FROM metrics m JOIN evaluations e ON e.eval_id = m.eval_id"
    )
    for task, metric in metrics:
        pages[str(links.history(task, metric))] = history_page(store, task, metric, links)
    for first, second in compared:
        pages[str(links.comparison(first, second))] = comparison_page(store, first, second, links)
    write_atomic(out / MARKER, "pages written by ftbench view --export; a later export may replace them\n")
    written = []
    for name, text in pages.items():
        write_atomic(out / name, text)
        written.append(out / name)
    return written
