from __future__ import annotations

import pytest


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub access at all, as on CI."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
