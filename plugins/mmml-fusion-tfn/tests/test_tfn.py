"""Tests of the ``tfn`` fusion: contract with 2 and 3 modalities, the outer product against an
explicit einsum over the module's own weights, sizes, config errors."""

from __future__ import annotations

import pytest
import torch

from mmml_core import registry
from mmml_core.config import ConfigError
from mmml_core.testing import FusionContract, random_encoder_outputs


class TestContractTwoModalities(FusionContract):
    name = "tfn"  # contract_config, text + audio


class TestContractThreeModalities(FusionContract):
    name = "tfn"
    input_dims = {"text": 12, "audio": 10, "vision": 6}
    lengths = {"text": [3, 7, 5], "audio": [9, 4, 6], "vision": [2, 5, 4]}


def explicit(f, enc) -> torch.Tensor:
    """The formula written out: z_m = [W_m p_m + b_m, 1]; Z = z_audio ⊗ z_text (⊗ z_vision)
    in sorted modality order; MLP = ReLU(W4 ReLU(W2 Z + b2) + b4) (dropout off)."""
    z = {}
    for m, out in enc.items():
        lin = f.proj[m]
        v = out.pooled @ lin.weight.T + lin.bias
        z[m] = torch.cat([v, torch.ones(v.shape[0], 1)], dim=1)
    if len(z) == 2:
        Z = torch.einsum("bi,bj->bij", z["audio"], z["text"])
    else:
        Z = torch.einsum("bi,bj,bk->bijk", z["audio"], z["text"], z["vision"])
    Z = Z.reshape(Z.shape[0], -1)
    first, second = f.mlp[1], f.mlp[3]
    h = torch.relu(Z @ first.weight.T + first.bias)
    return torch.relu(h @ second.weight.T + second.bias)


@pytest.mark.parametrize(
    "dims",
    [{"text": 12, "audio": 10}, {"vision": 6, "text": 12, "audio": 10}],  # any dict order
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


@pytest.mark.parametrize(
    ("dims", "extra", "message"),
    [
        ({"text": 8}, {}, "2 or 3 modalities"),
        ({"text": 8, "audio": 8, "vision": 8, "other": 8}, {}, "2 or 3 modalities"),
        ({"text": 8, "audio": 8}, {"proj_dim": 0}, "proj_dim"),
        ({"text": 8, "audio": 8}, {"size": 3}, "unknown key"),
    ],
)
def test_config_errors(dims: dict[str, int], extra: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        registry.create("fusion", "tfn", input_dims=dims, **extra)
    assert "proj_dim" in str(info.value)  # valid fields listed
