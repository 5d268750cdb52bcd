"""oneDNN's linear from reordered weights: the same products as torch's ``nn.Linear`` within fp32 (and bf16)
rounding, gradients and autocast left to torch, the model's own parameters untouched, and nothing packed where
it cannot help or does not fit."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftbench.harness.core.checkpoints import resolve_checkpoint
from ftbench.harness.core.precision import Precision
from ftbench.harness.engines import hf, onednn
from ftbench.harness.engines.onednn import PackedLinear, pack_linears
from ftbench.harness.engines.session import PlannedEval
from ftbench.tasks.registry import TASKS
from tests.records import make_request

TEXTS = ["Using the numbers 3, 5 and 7, make 22.", "Name a colour.", "2 + 2 ="]


def test_the_pinned_torch_has_onednn() -> None:
    assert onednn.available()


def packed_copy(layer: nn.Linear) -> nn.Linear:
    """A packed layer with ``layer``'s parameters (``layer`` itself stays torch's)."""
    twin = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, dtype=layer.weight.dtype)
    twin.load_state_dict(layer.state_dict())
    assert pack_linears(twin, "cpu") is not None
    return twin


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "shape", [(1, 96), (7, 96), (64, 96), (3, 5, 96)], ids=["one row", "seven rows", "64 rows", "3-d batch"]
)
def test_packed_fp32_agrees_with_torch(bias: bool, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(96, 200, bias=bias)
    twin = packed_copy(layer)
    inputs = torch.randn(shape)
    with torch.no_grad():
        exact = F.linear(inputs.double(), layer.weight.double(), None if layer.bias is None else layer.bias.double())
        ours, theirs = twin(inputs), layer(inputs)
    assert isinstance(twin, PackedLinear) and ours.shape == theirs.shape
    # the packed product runs (it is not torch's own, bit for bit) and is as close to the exact one as torch's
    assert torch.equal(ours, torch.ops.mkldnn._linear_pointwise(inputs, twin.packed, twin.bias, "none", [], ""))
    scale = exact.abs().max().item()
    assert (ours.double() - exact).abs().max().item() < 1e-6 * scale * 96**0.5
    assert (ours.double() - exact).abs().max().item() < 10 * max((theirs.double() - exact).abs().max().item(), 1e-7)


def test_packed_takes_non_contiguous_inputs() -> None:
    torch.manual_seed(1)
    layer = nn.Linear(64, 32)
    twin = packed_copy(layer)
    inputs = torch.randn(5, 4, 64).transpose(0, 1)
    with torch.no_grad():
        assert torch.allclose(twin(inputs), layer(inputs), rtol=1e-5, atol=1e-5)


def test_packed_bf16_agrees_within_its_rounding() -> None:
    torch.manual_seed(2)
    layer = nn.Linear(128, 64, dtype=torch.bfloat16)
    twin = packed_copy(layer)
    inputs = torch.randn(16, 128, dtype=torch.bfloat16)
    with torch.no_grad():
        ours, theirs = twin(inputs), layer(inputs)
    assert ours.dtype is torch.bfloat16
    # both round an fp32 sum to bf16: at most a few units of bf16's last place apart
    assert (ours.float() - theirs.float()).abs().max().item() <= 4 * 2**-8 * theirs.float().abs().max().item()


def test_gradients_and_autocast_use_torch_product() -> None:
    torch.manual_seed(3)
    layer = nn.Linear(32, 16)
    twin = packed_copy(layer)
    inputs = torch.randn(4, 32, requires_grad=True)
    out = twin(inputs)
    assert torch.equal(out, layer(inputs))
    out.sum().backward()
    assert twin.weight.grad is not None and inputs.grad is not None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert twin(inputs).dtype is torch.bfloat16


def tiny_model(tiny_model_dir: Path) -> nn.Module:
    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()


def logits(model: nn.Module, tiny_model_dir: Path) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


def refuse_torch_linear(*args: object, **kwargs: object) -> None:
    raise AssertionError("torch's own product ran")


def test_packed_model_scores_like_the_unpacked_one(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(tiny_model_dir)
    before = logits(model, tiny_model_dir)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    linears = sum(type(module) is nn.Linear for module in model.modules())
    packing = pack_linears(model, "cpu")
    assert packing is not None and packing.layers == linears and f"{linears} layers" in packing.note
    assert packing.bytes == sum(m.weight.nbytes for m in model.modules() if isinstance(m, PackedLinear))
    assert sum(isinstance(module, PackedLinear) for module in model.modules()) == linears
    monkeypatch.setattr(onednn.F, "linear", refuse_torch_linear)  # every layer takes the packed product
    after = logits(model, tiny_model_dir)
    monkeypatch.undo()
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-4)
    assert torch.equal(before.argmax(-1), after.argmax(-1))
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in state.items())


def test_unmerged_lora_packs_base_and_adapter_layers(tiny_model_dir: Path) -> None:
    torch.manual_seed(4)
    model = get_peft_model(tiny_model(tiny_model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(parameter, std=0.5)  # a trained adapter: its product changes the scores
    model.eval()
    before = logits(model, tiny_model_dir)
    assert pack_linears(model, "cpu") is not None
    packed = [name for name, module in model.named_modules() if isinstance(module, PackedLinear)]
    assert any(name.endswith("q_proj.base_layer") for name in packed)
    assert any("lora_A" in name for name in packed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onednn.F, "linear", refuse_torch_linear)
        after = logits(model, tiny_model_dir)
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-4)


def test_nothing_packed_where_it_cannot_help(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(tiny_model_dir)
    assert pack_linears(model, "cuda") is None
    half = nn.Sequential(nn.Linear(8, 8, dtype=torch.float16))
    assert pack_linears(half, "cpu") is None and type(half[0]) is nn.Linear
    monkeypatch.setattr(onednn.psutil, "virtual_memory", lambda: SimpleNamespace(available=1024))
    assert pack_linears(model, "cpu") is None
    monkeypatch.undo()
    monkeypatch.setattr(onednn, "available", lambda: False)
    assert pack_linears(model, "cpu") is None
    assert not any(isinstance(module, PackedLinear) for module in model.modules())


def test_the_engine_computes_with_packed_layers_and_says_so(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = make_request(checkpoint=str(tiny_model_dir), precision=Precision.FP32, batch_size=2)
    task = TASKS["countdown"]
    loaded = hf.load_model(PlannedEval(request, resolve_checkpoint(tiny_model_dir), task, task.parse_options({})))
    assert any(note.startswith("linear layers: oneDNN") for note in loaded.notes)
    stock = HFLM(pretrained=str(tiny_model_dir), device="cpu", dtype="float32", batch_size=2)
    pairs = [Instance("loglikelihood", {}, (text, " yes"), i) for i, text in enumerate(TEXTS)]
    expected = [value for value, _ in stock.loglikelihood(pairs, disable_tqdm=True)]
    monkeypatch.setattr(onednn.F, "linear", refuse_torch_linear)
    found = [value for value, _ in loaded.lm.loglikelihood(pairs, disable_tqdm=True)]
    settings = {"until": [], "max_gen_toks": 4, "do_sample": False}
    texts = loaded.lm.generate_until([Instance("generate_until", {}, (TEXTS[0], settings), 0)], disable_tqdm=True)
    assert found == pytest.approx(expected, abs=1e-4) and len(texts) == 1


def test_a_changed_weight_is_computed_from_the_weight_itself() -> None:
    torch.manual_seed(5)
    layer = nn.Linear(16, 8)
    twin = packed_copy(layer)
    inputs = torch.randn(3, 16)
    with torch.no_grad():
        twin.weight.mul_(2)  # an adapter merged in place, a state dict loaded
        layer.weight.mul_(2)
        assert torch.equal(twin(inputs), layer(inputs))
    twin.load_state_dict(nn.Linear(16, 8).state_dict())
    with torch.no_grad():
        assert torch.equal(twin(inputs), F.linear(inputs, twin.weight, twin.bias))


def test_bf16_is_left_to_torch_where_onednn_cannot_compute_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onednn, "packable_dtypes", lambda: (torch.float32,))
    model = nn.Sequential(nn.Linear(8, 8, dtype=torch.bfloat16), nn.Linear(8, 8))
    packing = pack_linears(model, "cpu")
    assert packing is not None and packing.layers == 1
    assert type(model[0]) is nn.Linear and isinstance(model[1], PackedLinear)


def test_a_layer_onednn_refuses_leaves_every_layer_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    reorder = torch.ops.mkldnn._reorder_linear_weight

    def refuse_the_second(weight: torch.Tensor, rows: int) -> torch.Tensor:
        calls.append(rows)
        if len(calls) == 2:
            raise RuntimeError("no kernel for this CPU")
        return reorder(weight, rows)

    fake_ops = SimpleNamespace(
        mkldnn=SimpleNamespace(
            _reorder_linear_weight=refuse_the_second,
            _is_mkldnn_bf16_supported=torch.ops.mkldnn._is_mkldnn_bf16_supported,
        )
    )
    monkeypatch.setattr(onednn.torch, "ops", fake_ops)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    assert pack_linears(model, "cpu") is None
    monkeypatch.undo()
    assert len(calls) == 2 and all(type(layer) is nn.Linear for layer in model)
