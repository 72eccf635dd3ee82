"""Test helpers (a uniquely named module: every plugin's tests share one sys.path)."""

from __future__ import annotations

import numpy as np

SR = 16000


def tone(seconds: float, pitch: float, seed: int = 0) -> np.ndarray:
    """A voiced-like test signal: a harmonic tone with a slow envelope, noise and DC offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    wave = env * (0.3 * np.sin(2 * np.pi * pitch * t) + 0.1 * np.sin(4 * np.pi * pitch * t))
    return (wave + 0.02 * rng.standard_normal(t.size) + 0.05).astype(np.float32)
