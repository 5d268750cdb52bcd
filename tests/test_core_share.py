"""The transformers engine's threads follow the cores other processes leave free while it works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest

from ftbench.harness.engines import cores
from ftbench.harness.engines.cores import CoreShare


class Load:
    """What psutil reports: the whole machine's busy percent and this process's own."""

    def __init__(self) -> None:
        self.machine = 0.0
        self.mine = 0.0

    def install(self, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        monkeypatch.setattr(cores.os, "cpu_count", lambda: count)
        monkeypatch.setattr(cores.psutil, "cpu_percent", lambda interval=None: self.machine)
        monkeypatch.setattr(psutil.Process, "cpu_percent", lambda process, interval=None: self.mine)


def test_threads_step_down_beside_another_process_and_back_up_when_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    load = Load()
    load.install(monkeypatch, 4)
    applied: list[int] = []
    share = CoreShare(applied.append, threads=4, every=0.0)
    load.machine, load.mine = 100.0, 400.0  # this process alone uses all four cores
    assert share.check() == 4 and applied == []
    load.machine, load.mine = 100.0, 200.0  # another process took two cores
    assert share.check() == 2 and applied == [2]
    load.machine, load.mine = 100.0, 100.0  # three of four cores busy elsewhere: at least one thread stays
    assert share.check() == 1 and applied == [2, 1]
    load.machine, load.mine = 25.0, 100.0  # the other process ended
    assert share.check() == 4 and applied == [2, 1, 4]


def test_the_load_is_measured_at_most_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    load = Load()
    load.install(monkeypatch, 2)
    applied: list[int] = []
    share = CoreShare(applied.append, threads=2, every=3600.0)
    load.machine = 100.0  # the whole machine busy elsewhere, but not yet measured again
    assert share.check() == 2 and applied == []


def test_the_loaded_engine_reads_the_free_cores_between_generation_steps(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lm_eval.api.instance import Instance

    from ftbench.harness.engines.hf_shared import SharedPrefixHFLM

    checks: list[int] = []
    original = CoreShare.check

    def counted(self: CoreShare) -> int:
        checks.append(1)
        return original(self)

    monkeypatch.setattr(CoreShare, "check", counted)
    lm = SharedPrefixHFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=2)
    lm.core_share = CoreShare(lambda threads: None, threads=1)
    until: dict[str, Any] = {"until": ["\n\n\n"], "max_gen_toks": 6, "do_sample": False}
    lm.generate_until([Instance("generate_until", {}, ("Count: one two", until), 0)])
    assert len(checks) >= 5  # one before each new token's pass
