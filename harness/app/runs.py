"""A run and the results store: the application evaluates a spec (``run_spec``) and adds what it stored to the store,
once per run.

The store (``FTBENCH_STORE``, else ``ftbench.db`` beside the results folder; ``FTBENCH_STORE=none``: none) is checked
before any work, so an unreachable store or one of a newer schema is refused before a model loads.
"""

from __future__ import annotations

from ftbench.harness.core.events import EventSink
from ftbench.harness.evaluation.lock import check_writable
from ftbench.harness.evaluation.run import RunOutcome, run_spec
from ftbench.harness.evaluation.spec import RunSpec
from ftbench.harness.index.indexing import run_indexer
from ftbench.tasks.registry import recorded_task


def run_and_store(spec: RunSpec, force: bool = False, on_event: EventSink | None = None) -> RunOutcome:
    """``run_spec``, then the results folder added to the results store.

    Raises:
        FtbenchError: an unreachable store (before any work), anything ``run_spec`` refuses, or adding to the store
            failed (the results are stored all the same; the message says how to add them).
    """
    check_writable(spec.out)  # the results directory first, then the store beside it
    add_to_store = run_indexer(spec.out, recorded_task)
    outcome = run_spec(spec, force, on_event)
    add_to_store(outcome.run, outcome.records)
    return outcome
