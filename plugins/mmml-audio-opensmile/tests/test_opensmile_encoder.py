"""Tests of the ``opensmile`` encoder: contract, 20 ms frame grid, disk cache, z-scoring."""

from __future__ import annotations

import pickle
from pathlib import Path

import mmml_audio_opensmile.encoder as encoder_module
import numpy as np
import opensmile
import pytest
import torch
from mmml_audio_opensmile.features import frame_count
from mmml_audio_opensmile.smile_config import (
    FEATURE_SETS,
    PatchError,
    patch_framers,
    patched_config,
    shipped_config_root,
)

from mmml_core import registry
from mmml_core.config import ConfigError
from mmml_core.interfaces import config_dict
from mmml_core.testing import EncoderContract

SR = 16000


def tone(seconds: float, pitch: float = 150.0, seed: int = 0) -> np.ndarray:
    """A voiced-like test clip: a tone with harmonics plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(SR * seconds))) / SR
    wave = sum(0.2 / k * np.sin(2 * np.pi * pitch * k * t) for k in (1, 2, 3))
    return (wave + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


TINY = {"dim": 16, "heads": 2, "layers": 1, "ff_dim": 32}


class TestOpenSmileContract(EncoderContract):
    """The core contract, with the disk cache on and pointed at a temporary directory."""

    name = "opensmile"

    @pytest.fixture(autouse=True)
    def _tmp_cache(self, tmp_path: Path) -> None:
        self.cache_dir = tmp_path / "cache"

    def component_config(self) -> dict:
        return {**super().component_config(), "cache": True, "cache_dir": str(self.cache_dir)}


def test_frames_are_20ms_apart() -> None:
    """A 2.0 s clip gives 1 + (32000 - 960) // 320 = 98 frames of 60 ms, one every 20 ms."""
    wave = tone(2.0)
    enc = registry.create("encoder", "opensmile", cache=False, **TINY)
    assert frame_count(wave.size, 0.06, 0.02) == 98
    batch = enc.preprocess([wave, wave[:SR]])
    assert batch["features"].shape == (2, 98, 65)  # ComParE_2016: 65 LLDs
    assert batch["mask"].sum(dim=1).tolist() == [98, 1 + (SR - 960) // 320]  # 98, 48

    # openSMILE's own timestamps for the patched config: starts 0, 0.02, ..., ends start+0.06
    smile = opensmile.Smile(
        feature_set=str(patched_config("ComParE_2016", 0.06, 0.02)), feature_level="lld"
    )
    index = smile.process_signal(wave, SR).index
    starts = np.array([s.total_seconds() for s in index.get_level_values(0)])[:98]
    ends = np.array([e.total_seconds() for e in index.get_level_values(1)])[:98]
    np.testing.assert_allclose(starts, 0.02 * np.arange(98), atol=1e-9)
    np.testing.assert_allclose(ends - starts, 0.06, atol=1e-9)
    # and our rows are exactly those first 98 rows of openSMILE's output
    raw = smile(wave, SR)[0].T  # (rows, 65)
    np.testing.assert_array_equal(batch["features"][0].numpy(), raw[:98].astype(np.float32))

    # the shipped config is untouched: openSMILE's default grid is 10 ms
    default = opensmile.Smile(
        feature_set=opensmile.FeatureSet.ComParE_2016,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )
    default_starts = default.process_signal(wave, SR).index.get_level_values(0)[:3]
    assert [s.total_seconds() for s in default_starts] == pytest.approx([0.0, 0.01, 0.02])


def test_frame_settings_come_from_the_config() -> None:
    """eGeMAPS with 25 ms frames every 10 ms: 1 + (24000 - 400) // 160 = 148 frames."""
    enc = registry.create(
        "encoder",
        "opensmile",
        feature_set="eGeMAPSv02",
        frame_seconds=0.025,
        step_seconds=0.01,
        cache=False,
        **TINY,
    )
    batch = enc.preprocess([tone(1.5)])
    assert batch["features"].shape == (1, 148, 25)


def test_clip_shorter_than_a_frame_gives_one_frame() -> None:
    enc = registry.create("encoder", "opensmile", feature_set="eGeMAPSv02", cache=False, **TINY)
    batch = enc.preprocess([tone(0.03), tone(0.2)])
    assert batch["mask"].sum(dim=1).tolist() == [1, 1 + (3200 - 960) // 320]


def test_patch_rewrites_only_framer_keys() -> None:
    shipped = shipped_config_root() / "compare" / "ComParE_2016_core.lld.conf.inc"
    text = shipped.read_text()
    patched, n = patch_framers(text, 0.06, 0.02)
    assert n == 2  # the 60 ms (pitch) and 20 ms (spectral) framers
    changed = [
        (a, b) for a, b in zip(text.splitlines(), patched.splitlines(), strict=True) if a != b
    ]
    assert sorted(b.replace(" ", "") for _, b in changed) == sorted(
        ["frameSize=0.06", "frameStep=0.02", "frameSize=0.06", "frameStep=0.02"]
    )
    assert all(a.split("=")[0].strip() in ("frameSize", "frameStep") for a, _ in changed)
    assert "frameStep = 0.010" in shipped.read_text()  # the wheel's file is not modified
    with pytest.raises(PatchError, match="frameStep"):
        patch_framers("[fr:cFramer]\nframeSize = 0.025\n[next:cWindower]\n", 0.06, 0.02)
    for name in FEATURE_SETS:
        conf = patched_config(name, 0.06, 0.02)
        assert conf.is_file() and shipped_config_root() not in conf.parents


def _cached_files(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*.npy")}


def test_cache_is_used_on_a_second_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    items = [tone(0.5, 140), tone(0.8, 200, seed=1), tone(0.3, 260, seed=2)]
    cfg = {**TINY, "feature_set": "eGeMAPSv02", "cache_dir": str(tmp_path)}
    first = registry.create("encoder", "opensmile", **cfg)
    out1 = first.preprocess(items)
    stats = first.feature_cache.stats
    assert (stats.hits, stats.misses, len(stats.written)) == (0, 3, 3)
    files = _cached_files(tmp_path)
    assert len(files) == 3

    calls: list[int] = []
    real = encoder_module.extract_lld

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(encoder_module, "extract_lld", counting)
    second = registry.create("encoder", "opensmile", **cfg)  # a new run, same settings
    out2 = second.preprocess(items)
    assert calls == [], "openSMILE ran although every clip was cached"
    assert (second.feature_cache.stats.hits, second.feature_cache.stats.misses) == (3, 0)
    assert _cached_files(tmp_path) == files  # nothing rewritten
    torch.testing.assert_close(out2["features"], out1["features"], rtol=0, atol=0)
    torch.testing.assert_close(out2["mask"], out1["mask"])

    # a changed waveform is a different clip
    second.preprocess([items[0] * 0.5])
    assert len(calls) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"feature_set": "ComParE_2016"},
        {"step_seconds": 0.01},
        {"frame_seconds": 0.04},
        {"feature_set": "ComParE_2016", "feature_level": "lld_de"},
    ],
)
def test_cache_is_invalidated_by_extraction_settings(tmp_path: Path, change: dict) -> None:
    items = [tone(0.5), tone(0.4, 220, seed=3)]
    base = {**TINY, "feature_set": "eGeMAPSv02", "cache_dir": str(tmp_path)}
    registry.create("encoder", "opensmile", **base).preprocess(items)
    before = _cached_files(tmp_path)
    changed = registry.create("encoder", "opensmile", **{**base, **change})
    batch = changed.preprocess(items)
    stats = changed.feature_cache.stats
    assert (stats.hits, stats.misses) == (0, 2)
    after = _cached_files(tmp_path)
    assert len(after) == 4 and all(after[p] == t for p, t in before.items())
    # and the new entries hold the new settings' features
    step = change.get("step_seconds", 0.02)
    frame = change.get("frame_seconds", 0.06)
    assert int(batch["mask"][0].sum()) == frame_count(items[0].size, frame, step)


def test_zscore_statistics_fit_on_train_and_saved(tmp_path: Path) -> None:
    train = [tone(0.6, 120), tone(0.9, 210, seed=4), tone(0.4, 300, seed=5)]
    cfg = {**TINY, "feature_set": "eGeMAPSv02", "cache_dir": str(tmp_path)}
    torch.manual_seed(0)
    enc = registry.create("encoder", "opensmile", **cfg).eval()
    with pytest.raises(RuntimeError, match="fit"):
        enc(enc.preprocess(train))
    enc.fit(train)
    # independent computation: all frames of all training clips, per descriptor
    frames = np.concatenate(
        [
            opensmile.Smile(
                feature_set=str(patched_config("eGeMAPSv02", 0.06, 0.02)), feature_level="lld"
            )(w, SR)[0].T[: frame_count(w.size, 0.06, 0.02)]
            for w in train
        ]
    ).astype(np.float64)
    std = frames.std(axis=0)
    std[std < 1e-8] = 1.0
    np.testing.assert_allclose(enc.feature_mean.numpy(), frames.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(enc.feature_std.numpy(), std, rtol=1e-4, atol=1e-6)
    assert int(enc.fit_frames) == frames.shape[0]
    state = enc.state_dict()
    assert {"feature_mean", "feature_std", "fit_frames"} <= set(state)

    again = registry.create("encoder", "opensmile", **config_dict(enc)).eval()
    again.load_state_dict(state)
    test_items = [tone(0.7, 180, seed=9)]
    with torch.no_grad():
        torch.testing.assert_close(
            again(again.preprocess(test_items)).pooled,
            enc(enc.preprocess(test_items)).pooled,
            rtol=0,
            atol=0,
        )


def test_hidden_excludes_cls_and_padding_is_zero() -> None:
    enc = registry.create("encoder", "opensmile", feature_set="eGeMAPSv02", cache=False, **TINY)
    items = [tone(0.3), tone(0.6, 220)]
    enc.fit(items)
    out = enc.eval()(enc.preprocess(items))
    assert out.hidden.shape[1] == frame_count(items[1].size, 0.06, 0.02)  # frames only, no CLS
    assert out.hidden[0][~out.mask[0]].abs().sum() == 0


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="lld_de"):
        registry.create("encoder", "opensmile", feature_set="eGeMAPSv02", feature_level="lld_de")
    with pytest.raises(ConfigError, match="feature_set"):
        registry.create("encoder", "opensmile", feature_set="IS09")
    with pytest.raises(ConfigError, match="divisible"):
        registry.create("encoder", "opensmile", dim=30, heads=4)
    with pytest.raises(ConfigError, match="positive"):
        registry.create("encoder", "opensmile", step_seconds=0)


def test_encoder_pickles_for_spawned_workers(tmp_path: Path) -> None:
    enc = registry.create(
        "encoder", "opensmile", feature_set="eGeMAPSv02", cache_dir=str(tmp_path), **TINY
    )
    enc.preprocess([tone(0.3)])  # builds the cache handle and the openSMILE object
    clone = pickle.loads(pickle.dumps(enc))
    batch = clone.preprocess([tone(0.3)])
    assert clone.feature_cache.stats.hits == 1
    assert batch["features"].shape[0] == 1


def test_default_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMML_CACHE_DIR", str(tmp_path))
    enc = registry.create("encoder", "opensmile", feature_set="eGeMAPSv02", **TINY)
    assert enc.feature_cache.root == tmp_path / "opensmile"
    enc.preprocess([tone(0.2)])
    assert len(list((tmp_path / "opensmile").rglob("*.npy"))) == 1
    monkeypatch.delenv("MMML_CACHE_DIR")
    fresh = registry.create("encoder", "opensmile", feature_set="eGeMAPSv02", **TINY)
    assert fresh.feature_cache.root == Path.home() / ".cache" / "mmml" / "opensmile"


# ---------------------------------------------------------------------------------- deltas
#: the ComParE LLDs whose deltas openSMILE takes only within runs of non-zero values
#: (``onlyInSegments``); every other delta is the plain +-2 frame regression
SEGMENT_DELTAS = (
    "F0final_sma",
    "voicingFinalUnclipped_sma",
    "jitterLocal_sma",
    "jitterDDP_sma",
    "shimmerLocal_sma",
    "logHNR_sma",
)


def delta_regression(x: np.ndarray, window: int = 2) -> np.ndarray:
    """``sum_k k * (x[t+k] - x[t-k]) / (2 * sum_k k^2)`` along axis 0, edge rows repeated."""
    padded = np.pad(x, ((window, window), (0, 0)), mode="edge")
    n = x.shape[0]
    num = sum(
        k * (padded[window + k : window + k + n] - padded[window - k : window - k + n])
        for k in range(1, window + 1)
    )
    return num / (2 * sum(k * k for k in range(1, window + 1)))


def test_deltas_are_the_llds_then_their_deltas() -> None:
    """deltas=True: 130 columns = the 65 LLDs of deltas=False, then openSMILE's ``lld_de``."""
    t = np.arange(SR) / SR
    wave = tone(1.0, pitch=140.0) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    n = frame_count(wave.size, 0.06, 0.02)  # 48
    plain = registry.create("encoder", "opensmile", cache=False, **TINY)
    both = registry.create("encoder", "opensmile", cache=False, deltas=True, **TINY)
    assert (plain.num_features, both.num_features) == (65, 130)
    assert both.input_proj.in_features == 130 and both.feature_mean.shape == (130,)
    lld = plain.preprocess([wave])["features"][0].numpy()
    feats = both.preprocess([wave])["features"][0].numpy()
    assert lld.shape == (n, 65) and feats.shape == (n, 130) and np.isfinite(feats).all()
    np.testing.assert_array_equal(feats[:, :65], lld)

    # the last 65 columns are FeatureLevel.LowLevelDescriptors_Deltas on the same patched config
    conf = str(patched_config("ComParE_2016", 0.06, 0.02))
    smile_de = opensmile.Smile(
        feature_set=conf, feature_level=opensmile.FeatureLevel.LowLevelDescriptors_Deltas
    )
    np.testing.assert_array_equal(feats[:, 65:], smile_de(wave, SR)[0].T[:n].astype(np.float32))
    assert not np.allclose(feats[:, 65:], feats[:, :65])

    # and by hand: the +-2 frame regression over openSMILE's whole LLD output (its partial
    # end-of-input row included, edge rows repeated), for all but the six segment-wise deltas
    smile = opensmile.Smile(feature_set=conf, feature_level="lld")
    names = list(smile.feature_names)
    assert [f"{name}_de" for name in SEGMENT_DELTAS] == list(smile_de.feature_names)[:6]
    plain_cols = [i for i, name in enumerate(names) if name not in SEGMENT_DELTAS]
    assert len(plain_cols) == 59
    raw = smile(wave, SR)[0].T.astype(np.float64)  # (rows >= n, 65)
    expected = delta_regression(raw)[:n, plain_cols]
    got = feats[:, 65:][:, plain_cols].astype(np.float64)
    scale = np.abs(expected).max(axis=0)  # per column; a few (roll-offs of a tone) are 0
    assert (scale > 0).sum() >= 50  # the regression has something to match
    unit = np.where(scale > 0, scale, 1.0)
    np.testing.assert_allclose(got / unit, expected / unit, rtol=0, atol=1e-4)


class TestOpenSmileDeltasContract(TestOpenSmileContract):
    """The contract with ComParE_2016 LLDs + deltas (130 inputs), cache on in a temp dir."""

    def component_config(self) -> dict:
        return {**super().component_config(), "feature_set": "ComParE_2016", "deltas": True}

    def test_statistics_cover_all_130_columns(self) -> None:
        enc = self.ready()
        assert config_dict(enc)["deltas"] is True
        items = self.raw_items("audio")
        frames = np.concatenate([enc.clip_features(w) for w in items]).astype(np.float64)
        assert frames.shape[1] == 130 and int(enc.fit_frames) == frames.shape[0]
        std = frames.std(axis=0)
        std[std < 1e-8] = 1.0
        np.testing.assert_allclose(enc.feature_mean.numpy(), frames.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(enc.feature_std.numpy(), std, rtol=1e-4)
        # a checkpoint of the 130-input encoder does not load into a 65-input one
        plain = registry.create("encoder", "opensmile", **{**config_dict(enc), "deltas": False})
        with pytest.raises(RuntimeError, match="size mismatch"):
            plain.load_state_dict(enc.state_dict())


def test_deltas_get_their_own_cache_entries(tmp_path: Path) -> None:
    items = [tone(0.3)]
    cfg = {**TINY, "cache_dir": str(tmp_path)}
    registry.create("encoder", "opensmile", **cfg).preprocess(items)
    both = registry.create("encoder", "opensmile", deltas=True, **cfg)
    assert both.preprocess(items)["features"].shape[-1] == 130
    assert (both.feature_cache.stats.hits, both.feature_cache.stats.misses) == (0, 1)
    assert sorted(np.load(p).shape[1] for p in tmp_path.rglob("*.npy")) == [65, 130]
    again = registry.create("encoder", "opensmile", deltas=True, **cfg)
    again.preprocess(items)
    assert (again.feature_cache.stats.hits, again.feature_cache.stats.misses) == (1, 0)


def test_deltas_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="no deltas"):
        registry.create("encoder", "opensmile", feature_set="eGeMAPSv02", deltas=True)
    with pytest.raises(ConfigError, match="feature_level"):
        registry.create("encoder", "opensmile", feature_level="lld_de", deltas=True)
