"""The mmml-core contract suite over the three encoders with their random:tiny presets."""

from __future__ import annotations

from mmml_core.testing import EncoderContract


class TestRobertaEnglishContract(EncoderContract):
    name = "roberta"


class TestRobertaChineseContract(EncoderContract):
    name = "roberta"
    config = {"checkpoint": "random:tiny", "language": "zh"}

    def raw_items(self, modality: str) -> list[str]:
        return ["很好", "这部电影的剧情太慢了，演员的表演也很糟糕", "还行"]


class TestData2VecContract(EncoderContract):
    name = "data2vec"


class TestHubertContract(EncoderContract):
    name = "hubert"
