"""The built-in ``concat`` fusion over three and four modalities (docs/fusion.md): the contract
suite (padding invariance under masks included) and the sorted-name layout of its output.
The plugin fusions have their own N-modality tests (plugins/mmml-fusion-transformer/tests,
plugins/mmml-fusion-tfn/tests)."""

from __future__ import annotations

import torch

from mmml_core import registry
from mmml_core.testing import FusionContract, random_encoder_outputs


class TestConcatThreeModalities(FusionContract):
    name = "concat"
    input_dims = {"text": 12, "audio": 10, "vision": 6}
    lengths = {"text": [3, 7, 5], "audio": [9, 4, 6], "vision": [2, 5, 8]}


class TestConcatFourModalities(FusionContract):
    name = "concat"
    input_dims = {"vision": 6, "text": 12, "pulse": 1, "audio": 10}
    lengths = {"text": [3, 7, 5], "audio": [9, 4, 6], "vision": [2, 5, 8], "pulse": [1, 1, 1]}


def test_concat_joins_the_pooled_vectors_in_sorted_name_order() -> None:
    dims = {"vision": 6, "text": 12, "audio": 10}
    f = registry.create("fusion", "concat", input_dims=dims)
    enc = random_encoder_outputs(dims, {m: [2, 3] for m in dims}, seed=1)
    assert f.out_dim == 28
    want = torch.cat([enc[m].pooled for m in ("audio", "text", "vision")], dim=-1)
    assert torch.equal(f(enc), want)
