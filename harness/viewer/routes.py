"""What the live viewer serves at each path: its pages, the links between them, the store's stamp they follow and
the key each page is kept under."""

from __future__ import annotations

from urllib.parse import urlencode

from ftbench.harness.index.connection import Store
from ftbench.harness.viewer.page_cache import PageKey
from ftbench.harness.viewer.pages import comparison_page, evaluation_page, history_page, home_page


class LiveLinks:
    """Links between live pages: paths with query strings."""

    def home(self) -> str:
        """The home page."""
        return "/"

    def evaluation(self, key: str) -> str:
        """One evaluation's samples."""
        return "/eval?" + urlencode({"key": key})

    def comparison(self, first: str, second: str) -> str | None:
        """Two evaluations compared."""
        return "/compare?" + urlencode({"a": first, "b": second})

    def history(self, task: str, metric: str) -> str | None:
        """A metric's history."""
        return "/history?" + urlencode({"task": task, "metric": metric})


def store_stamp(store: Store) -> str:
    """What changes whenever anything is indexed: the counts and newest ids of evaluations and links."""
    row = store.execute(
        "SELECT (SELECT count(*) FROM evaluations), (SELECT max(eval_id) FROM evaluations), "
        "(SELECT count(*) FROM run_evaluations), (SELECT max(indexed_at) FROM runs)"
    )[0]
    return ":".join(str(value) for value in row)


PAGE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "/": (),
    "/eval": ("key",),
    "/compare": ("a", "b", "metric"),
    "/history": ("task", "metric"),
}
"""Each page's path and the query parameters it reads (others do not change it)."""


def page_key(path: str, query: dict[str, str]) -> PageKey:
    """What names the page at ``path``: its path and the parameters it reads, so that other parameters cannot make
    a page rendered again; raises LookupError for a path that is no page."""
    return path, tuple((name, query[name]) for name in PAGE_PARAMETERS[path] if name in query)


def live_page(store: Store, path: str, query: dict[str, str], stamp: str) -> str:
    """The live page at ``path`` for the store at ``stamp``.

    Raises:
        FtbenchError: the query names an unknown evaluation, task or metric.
        LookupError: ``path`` is no page.
    """
    links = LiveLinks()
    if path == "/":
        return home_page(store, links, stamp, [])
    if path == "/eval":
        return evaluation_page(store, query.get("key", ""), links, stamp)
    if path == "/compare":
        return comparison_page(store, query.get("a", ""), query.get("b", ""), links, query.get("metric"), stamp)
    if path == "/history":
        return history_page(store, query.get("task", ""), query.get("metric", ""), links, stamp)
    raise LookupError(path)
