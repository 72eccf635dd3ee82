"""Core tests run hermetically: plugin autoloading is off, so only mmml-core's own entry points
(built-in components and dataset kinds) are found, whatever else is installed. A test module
that needs plugins says so at its top::

    pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

and those distributions (``MMML_PLUGINS``) are allowed for it, in process and in the
``mmml-bench`` subprocesses it starts. Code that runs at collection time (parametrising over
the registry) uses :func:`fake_dists.plugins_enabled`.
"""

from __future__ import annotations

import os

import pytest

from mmml_core import hooks, registry

os.environ[registry.AUTOLOAD_ENV] = "1"
os.environ.pop(registry.PLUGINS_ENV, None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "plugins(*distributions): plugin distributions this test module needs (module level)",
    )


@pytest.fixture(autouse=True, scope="session")
def _feature_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """The feature cache of frozen encoders (mmml_core.cache) in a temporary folder, never the
    user's ~/.cache, for this process and the mmml-bench subprocesses it starts."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMML_CACHE_DIR", str(tmp_path_factory.mktemp("feature-cache")))
        yield


@pytest.fixture(autouse=True, scope="module")
def _plugins(request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("plugins")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.PLUGINS_ENV, ",".join(marker.args if marker else ()))
        registry.reset()
        hooks.reset()
        yield
    registry.reset()
    hooks.reset()
