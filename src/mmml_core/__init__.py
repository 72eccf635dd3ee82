"""mmml-core: interfaces, registries, data, metrics and the training harness of mmml.

``from mmml_core import registry`` is the one registry API (docs/architecture.md). Importing this
package does not import torch; the submodules that need it do.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from mmml_core import registry

try:
    __version__ = version("mmml-core")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__", "registry"]
