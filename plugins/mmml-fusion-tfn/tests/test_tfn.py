"""Tests of the ``tfn`` fusion: contract with 2, 3 and 4 modalities, the outer product against an
explicit einsum over the module's own weights, sizes, the size limit, config errors, and that
state dicts saved by the 2-or-3-modality code (commit df2a17f) load and give its outputs
(fixtures/reference.safetensors, written by fixtures/make_reference.py)."""

from __future__ import annotations

import string
import sys
from pathlib import Path

import pytest
import torch
from mmml_fusion_tfn.tfn import MAX_FIRST_LAYER_WEIGHTS
from safetensors.torch import load_file

from mmml_core import registry
from mmml_core.config import ConfigError
from mmml_core.interfaces import EncoderOutput
from mmml_core.testing import FusionContract, random_encoder_outputs

FIXTURES = Path(__file__).with_name("fixtures")
sys.path.insert(0, str(FIXTURES))
from make_reference import CASES as REFERENCE_CASES  # noqa: E402


class TestContractTwoModalities(FusionContract):
    name = "tfn"  # contract_config, text + audio


class TestContractThreeModalities(FusionContract):
    name = "tfn"
    input_dims = {"text": 12, "audio": 10, "vision": 6}
    lengths = {"text": [3, 7, 5], "audio": [9, 4, 6], "vision": [2, 5, 4]}


class TestContractFourModalities(FusionContract):
    name = "tfn"
    input_dims = {"text": 12, "audio": 10, "vision": 6, "pulse": 3}
    lengths = {"text": [3, 7, 5], "audio": [9, 4, 6], "vision": [2, 5, 4], "pulse": [1, 1, 1]}


def explicit(f, enc) -> torch.Tensor:
    """The formula written out: z_m = [W_m p_m + b_m, 1]; Z = z_1 ⊗ ... ⊗ z_M in sorted
    modality order (one einsum, row-major flattening); MLP = ReLU(W4 ReLU(W2 Z + b2) + b4)
    (dropout off)."""
    z = {}
    for m, out in enc.items():
        lin = f.proj[m]
        v = out.pooled @ lin.weight.T + lin.bias
        z[m] = torch.cat([v, torch.ones(v.shape[0], 1)], dim=1)
    letters = string.ascii_lowercase[8 : 8 + len(z)]  # i, j, k, ...; b is the batch
    spec = ",".join(f"b{c}" for c in letters) + "->b" + letters
    Z = torch.einsum(spec, *(z[m] for m in sorted(z)))
    Z = Z.reshape(Z.shape[0], -1)
    first, second = f.mlp[1], f.mlp[3]
    h = torch.relu(Z @ first.weight.T + first.bias)
    return torch.relu(h @ second.weight.T + second.bias)


@pytest.mark.parametrize(
    "dims",
    [
        {"text": 12, "audio": 10},
        {"vision": 6, "text": 12, "audio": 10},  # any dict order
        {"vision": 6, "pulse": 3, "text": 12, "audio": 10},
    ],
)
def test_equals_explicit_outer_product(dims: dict[str, int]) -> None:
    f = registry.create("fusion", "tfn", input_dims=dims, proj_dim=5, hidden=7).eval()
    enc = random_encoder_outputs(dims, {m: [3, 5, 2] for m in dims}, seed=4)
    with torch.no_grad():
        got, want = f(enc), explicit(f, enc)
    assert got.shape == (3, 7) and f.out_dim == 7
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_product_contains_the_unimodal_features() -> None:
    """Thanks to the appended 1s, each projected vector appears unchanged inside Z."""
    dims = {"text": 6, "audio": 4}
    f = registry.create("fusion", "tfn", input_dims=dims, proj_dim=3, hidden=4).eval()
    enc = random_encoder_outputs(dims, {"text": [2, 3], "audio": [4, 1]})
    captured = {}
    f.mlp[1].register_forward_hook(lambda mod, args, out: captured.update(Z=args[0]))
    with torch.no_grad():
        f(enc)
        Z = captured["Z"].reshape(2, 4, 4)  # (B, audio P+1, text P+1), sorted order
        text = enc["text"].pooled @ f.proj["text"].weight.T + f.proj["text"].bias
        audio = enc["audio"].pooled @ f.proj["audio"].weight.T + f.proj["audio"].bias
    torch.testing.assert_close(Z[:, 3, :3], text)  # audio's 1 times text's vector
    torch.testing.assert_close(Z[:, :3, 3], audio)  # audio's vector times text's 1
    torch.testing.assert_close(Z[:, 3, 3], torch.ones(2))


def test_sizes_at_defaults() -> None:
    f2 = registry.create("fusion", "tfn", input_dims={"text": 768, "audio": 768})
    f3 = registry.create("fusion", "tfn", input_dims={"text": 768, "audio": 768, "vision": 35})
    assert f2.mlp[1].in_features == 33**2 and f3.mlp[1].in_features == 33**3
    assert f2.out_dim == f3.out_dim == 128
    with torch.device("meta"):  # 33^4 * 128 = 151.8M weights: allowed, but not allocated here
        dims4 = {"text": 768, "audio": 768, "vision": 35, "pulse": 1}
        f4 = registry.create("fusion", "tfn", input_dims=dims4)
    assert f4.mlp[1].in_features == 33**4 and f4.out_dim == 128


def test_size_limit_names_proj_dim() -> None:
    dims5 = {m: 8 for m in ("text", "audio", "vision", "pulse", "touch")}
    assert 33**5 * 128 > MAX_FIRST_LAYER_WEIGHTS >= 33**4 * 128
    with pytest.raises(ConfigError, match=r"proj_dim=32.*39,135,393 features.*lower proj_dim"):
        registry.create("fusion", "tfn", input_dims=dims5)
    with torch.device("meta"):
        f = registry.create("fusion", "tfn", input_dims=dims5, proj_dim=8)  # 9^5 = 59,049
    assert f.mlp[1].in_features == 9**5


@pytest.mark.parametrize("case", sorted(REFERENCE_CASES))
def test_checkpoints_of_the_two_or_three_modality_code_load_and_agree(case: str) -> None:
    """Bit-identical on the machine that wrote the fixture; the tolerance only allows for
    another CPU's kernels."""
    stored = load_file(str(FIXTURES / "reference.safetensors"))
    dims, cfg = REFERENCE_CASES[case]
    f = registry.create("fusion", "tfn", input_dims=dims, **cfg).eval()
    prefix = f"{case}/state/"
    f.load_state_dict({k[len(prefix) :]: v for k, v in stored.items() if k.startswith(prefix)})
    # clone: a tensor read from the file may be unaligned, which some CPU kernels round
    # differently in the last bit
    parts = ("hidden", "mask", "pooled")
    enc = {
        m: EncoderOutput(*(stored[f"{case}/input/{m}/{k}"].clone() for k in parts)) for m in dims
    }
    with torch.no_grad():
        got = f(enc)
    torch.testing.assert_close(got, stored[f"{case}/output"], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("dims", "extra", "message"),
    [
        ({"text": 8}, {}, "2 or more modalities"),
        ({}, {}, "2 or more modalities"),
        ({"text": 8, "audio": 8}, {"proj_dim": 20000}, "lower proj_dim"),
        ({"text": 8, "audio": 8}, {"proj_dim": 0}, "proj_dim"),
        ({"text": 8, "audio": 8}, {"size": 3}, "unknown key"),
    ],
)
def test_config_errors(dims: dict[str, int], extra: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        registry.create("fusion", "tfn", input_dims=dims, **extra)
    assert "proj_dim" in str(info.value)  # valid fields listed
