"""The encoders' ``attention`` field: ``sdpa`` (default) and ``eager`` (the authors' profile)
compute the same outputs; anything else is a configuration error naming the choices."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from encoders_hf_helpers import tone
from mmml_encoders_hf.audio import AudioConfig
from mmml_encoders_hf.text import TextConfig

from mmml_core import registry
from mmml_core.config import ConfigError
from mmml_core.interfaces import config_dict

TEXTS = ["Great film.", "Honestly the plot was slow and the actors seemed bored.", "Not bad!"]
CLIPS = [tone(0.4, 150.0, 1), tone(1.5, 110.0, 2), tone(0.9, 220.0, 3)]
CASES = {
    "roberta": ({"language": "en"}, TEXTS),
    "data2vec": ({}, CLIPS),
    "hubert": ({}, CLIPS),
    "data2vec-hf": ({"masking": "hf", "padding": "max_length", "max_seconds": 2.0}, CLIPS),
}


def _encoder(name: str, attention: str, **config: Any) -> Any:
    torch.manual_seed(0)
    enc = registry.create("encoder", name, checkpoint="random:tiny", attention=attention, **config)
    return enc.eval()


@pytest.mark.parametrize("case", list(CASES))
def test_eager_and_sdpa_give_the_same_outputs(case: str) -> None:
    config, items = CASES[case]
    name = case.split("-")[0]
    sdpa, eager = _encoder(name, "sdpa", **config), _encoder(name, "eager", **config)
    assert sdpa.model.config._attn_implementation == "sdpa"
    assert eager.model.config._attn_implementation == "eager"
    eager.load_state_dict(sdpa.state_dict())
    inputs = sdpa.preprocess(items)
    with torch.no_grad():
        a, b = sdpa(inputs), eager(inputs)
    torch.testing.assert_close(a.mask, b.mask)
    torch.testing.assert_close(a.hidden, b.hidden, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.pooled, b.pooled, atol=1e-5, rtol=0)


def test_default_is_sdpa_and_bad_values_name_the_choices() -> None:
    assert TextConfig().attention == AudioConfig().attention == "sdpa"
    for name in ("roberta", "data2vec"):
        with pytest.raises(ConfigError, match=r"attention must be one of \('sdpa', 'eager'\)"):
            registry.create("encoder", name, checkpoint="random:tiny", attention="flash")


def test_attention_is_saved_with_the_encoder_config() -> None:
    saved = config_dict(_encoder("data2vec", "eager"))
    assert saved["attention"] == "eager"
    again = registry.create("encoder", "data2vec", **saved)
    assert again.model.config._attn_implementation == "eager"
