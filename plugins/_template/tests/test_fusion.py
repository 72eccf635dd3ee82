"""The example fusion passes mmml's fusion contract (shapes, gradients, padding, ...)."""

from __future__ import annotations

from mmml_core.testing import FusionContract


class TestExampleGated(FusionContract):
    name = "example_gated"
