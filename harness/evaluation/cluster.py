"""A run spread over a Ray cluster: each group of requests (one model load, its tasks) is one Ray task.

The driver plans the run as a local one does, submits groups largest first (expected generated tokens) with the
resources they need, and receives each finished evaluation as JSON to store it itself: workers write nothing
under the results directory, so nodes share no filesystem (checkpoints must be readable at the same paths on
every node). A group whose win-rate tasks use another variant's responses as reference starts once the group
holding that variant has finished, and receives its record.

Ray is imported only here, and only when a run asks for a cluster.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ftbench.harness.core.errors import EvaluationError, FtbenchError, first_line
from ftbench.harness.core.events import EvaluationEvent, Event, EventSink
from ftbench.harness.core.records import EvalRecord
from ftbench.harness.core.request import Engine
from ftbench.harness.evaluation.groups import Finished, evaluate_group, group_tokens, session_groups
from ftbench.harness.evaluation.plan import PlannedEval
from ftbench.harness.evaluation.spec import check_cluster_address
from ftbench.harness.evaluation.winrate import Judges

CONNECT_TIMEOUT_S = 10.0
"""How long a ``ray://`` address may take to accept a connection."""

PROGRESS_POLL_S = 0.5
"""How often the driver reads the workers' progress reports."""


@dataclass(frozen=True)
class Cluster:
    """A connected Ray cluster and the device its workers evaluate on."""

    address: str
    device: str

    def close(self) -> None:
        """Disconnect (and stop a cluster started by this process)."""
        import ray

        ray.shutdown()


def _refuse_unreachable(address: str) -> None:
    """Fail within ``CONNECT_TIMEOUT_S`` when a ``ray://`` address accepts no connection (Ray's client would
    retry for longer)."""
    parts = urlsplit(address)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise FtbenchError(
            f"cannot reach Ray cluster {address} ({exc.strerror or type(exc).__name__}); start it with "
            "`ray start --head` and check the client port (10001), or use --cluster local"
        ) from None


def _send_token_if_any() -> None:
    """Ray 2.60's heads require the token ``ray start`` keeps (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN``), but its
    client sends it only in token mode: turn that on, as Ray does for a local cluster, when a token is at hand and
    ``RAY_AUTH_MODE`` does not say otherwise (a head without authentication accepts the token too)."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _reason(exc: BaseException) -> str:
    """What Ray said, in one line: its message's first line, and where that line only introduces a traceback from
    the cluster (``Initialization failure from server:``), the traceback's last line, the error itself."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[-1]}"[:300]
    return first_line(exc, 200)


def connect_cluster(address: str, device: str) -> Cluster:
    """Connect to (or, for ``local``, start in this process) a Ray cluster and resolve the run's device on it.

    Args:
        address: ``auto`` (a running cluster this node belongs to), ``local`` (a cluster of this machine's CPUs,
            started here) or ``ray://HOST:PORT`` (Ray's client).
        device: the spec's device: ``auto`` picks CUDA when the cluster has GPUs.

    Raises:
        FtbenchError: a malformed or unreachable address, or device cuda on a cluster without GPUs.
    """
    import ray

    check_cluster_address(address)
    if address.startswith("ray://"):
        _refuse_unreachable(address)
        _send_token_if_any()
    options: dict[str, Any] = {"include_dashboard": False, "configure_logging": False}
    if address == "local":
        options |= {"address": "local", "num_cpus": os.cpu_count()}
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FtbenchError(
            f"cannot connect to Ray cluster {address} ({_reason(exc)}); start one with "
            "`ray start --head`, or use --cluster local"
        ) from None
    gpus = ray.cluster_resources().get("GPU", 0)
    if device == "cuda" and not gpus:
        ray.shutdown()
        raise FtbenchError(f"device cuda asked for but Ray cluster {address} has no GPU; use --device cpu or auto")
    resolved = device if device != "auto" else ("cuda" if gpus else "cpu")
    return Cluster(address, resolved)


class ProgressBoard:
    """A Ray actor that holds the workers' events (loading, evaluating, progress) until the driver reads them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def report(self, event: Event) -> None:
        """One event from a worker."""
        self.events.append(event)

    def drain(self) -> list[Event]:
        """The events since the last call."""
        events, self.events = self.events, []
        return events


def _evaluate_remotely(group: list[PlannedEval], references: dict[str, str], board: Any) -> Iterator[dict[str, str]]:
    """A Ray task: evaluate one group, yielding each record as JSON, and sending its events (with the node's
    name) to ``board``.

    Judge score caches live in a temporary folder of the worker; nothing is written under the results directory.
    """
    node = socket.gethostname()
    known = {key: EvalRecord.model_validate_json(text) for key, text in references.items()}

    def report(event: Event) -> None:
        board.report.remote(dataclasses.replace(event, node=node) if isinstance(event, EvaluationEvent) else event)

    with tempfile.TemporaryDirectory(prefix="ftbench-judges-") as scratch:
        judges = Judges(device=group[0].request.device, cache_dir=Path(scratch))
        records = evaluate_group(group, known.get, judges, report)
        for _ in group:
            record = next(records)
            known[record.key] = record
            yield {"key": record.key, "record": record.model_dump_json(), "node": node}
        records.close()


def _resources(group: list[PlannedEval]) -> dict[str, Any]:
    """One GPU for a CUDA group, one CPU otherwise; a vLLM group gets a fresh worker process, which frees all of
    its memory when the group ends."""
    request = group[0].request
    resources: dict[str, Any] = {"num_gpus": 1} if request.device == "cuda" else {"num_cpus": 1}
    if request.engine is Engine.VLLM:
        resources["max_calls"] = 1
    return resources


def _reference_groups(groups: list[list[PlannedEval]]) -> list[set[int]]:
    """For each group, the other groups holding the reference variants its win-rate requests need."""
    owner = {item.request.key(): index for index, group in enumerate(groups) for item in group}
    return [
        {owner[key] for item in group if (key := item.reference_key) in owner and owner[key] != index}
        for index, group in enumerate(groups)
    ]


def _references(
    group: list[PlannedEval], finished: dict[str, EvalRecord], stored: Callable[[str], EvalRecord | None]
) -> dict[str, str]:
    """The reference records a group's win-rate requests read, as JSON: finished in this run, or stored."""
    own = {item.request.key() for item in group}
    found = {}
    for key in {item.reference_key for item in group if item.reference_key and item.reference_key not in own}:
        record = finished.get(key) or stored(key)
        if record is not None:
            found[key] = record.model_dump_json()
    return found


def _failure(exc: Exception, group: list[PlannedEval]) -> FtbenchError:
    """A worker's failure as the one-line error a local run would raise."""
    import ray

    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else None
    if isinstance(cause, FtbenchError):
        return cause
    what = f"{group[0].label} ({', '.join(dict.fromkeys(item.request.task for item in group))})"
    error = cause or exc
    detail = first_line(error, 200)
    return EvaluationError(
        f"evaluating {what} failed on the Ray cluster: {type(error).__name__}: {detail}; re-run to resume from the "
        "stored results"
    )


def evaluate_on_cluster(
    pending: list[PlannedEval], stored: Callable[[str], EvalRecord | None], on_event: EventSink
) -> Iterator[Finished]:
    """Evaluate the requests on the connected cluster, one Ray task per group, largest groups first; yield each
    evaluation as it finishes (the caller stores it).

    Args:
        pending: the requests to evaluate, in plan order.
        stored: the stored record of a key (reference variants evaluated by an earlier run).
        on_event: receives the workers' events, each with its node's name.

    Raises:
        FtbenchError: an evaluation failed (the worker's own error when it is one), or win-rate references that
            wait on each other.
    """
    import ray

    groups = session_groups(pending)
    waiting = sorted(range(len(groups)), key=lambda index: -group_tokens(groups[index]))
    needs = _reference_groups(groups)
    by_key = {item.request.key(): item for item in pending}
    finished: dict[str, EvalRecord] = {}
    done: set[int] = set()
    running: dict[Any, int] = {}
    task = ray.remote(_evaluate_remotely)
    board: Any = ray.remote(num_cpus=0)(ProgressBoard).remote()
    try:
        while waiting or running:
            for index in [index for index in waiting if needs[index] <= done]:
                waiting.remove(index)
                options = {"num_returns": "streaming", "max_retries": 0, **_resources(groups[index])}
                references = _references(groups[index], finished, stored)
                running[task.options(**options).remote(groups[index], references, board)] = index
            if not running:
                raise FtbenchError(
                    "win-rate tasks use each other's variants as reference; give one of them reference: dataset"
                )
            ready, _ = ray.wait(list(running), num_returns=1, timeout=PROGRESS_POLL_S)
            for event in ray.get(board.drain.remote()):
                on_event(event)
            if not ready:
                continue
            generator: Any = ready[0]
            try:
                message: dict[str, str] = ray.get(next(generator))
            except StopIteration:
                done.add(running.pop(generator))
                continue
            except ray.exceptions.RayError as exc:
                raise _failure(exc, groups[running[generator]]) from None
            item = by_key[message["key"]]
            record = EvalRecord.model_validate_json(message["record"])
            finished[record.key] = record
            yield Finished(item, record, message["node"])
    finally:
        for generator in running:
            ray.cancel(generator, force=True)
