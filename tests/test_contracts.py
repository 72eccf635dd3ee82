"""Every registered component runs its kind's contract (mmml_core.testing).

The classes are generated from the registry at collection time, so an installed plugin is
covered without anyone adding a test here (timm's habit of testing ``list_models()``).
Broken or conflicting plugins are included on purpose: their contract fails with the
plugin's own error instead of being skipped.

Dataset kinds have no network to check; their contract here checks the class attributes the
run layer reads before it loads anything.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from mmml_core import registry
from mmml_core.metrics import SCHEMES
from mmml_core.testing import CONTRACTS


class DatasetKindContract:
    """What the run layer reads of a dataset kind class, before any data is loaded."""

    kind: ClassVar[str] = "dataset"
    name: ClassVar[str]

    def test_class_attributes(self) -> None:
        cls = registry.load(self.kind, self.name)
        assert dataclasses.is_dataclass(cls.Config)
        assert isinstance(cls.language, str) and cls.language
        assert cls.scheme in SCHEMES, f"scheme {cls.scheme!r} is none of {SCHEMES}"
        assert isinstance(cls.modalities, tuple) and cls.modalities
        assert all(isinstance(m, str) and m for m in cls.modalities)
        assert isinstance(cls.needs_path, bool)
        assert isinstance(cls.defaults, dict)
        assert set(cls.defaults) <= {"data", "train", "fields"}, sorted(cls.defaults)
        assert callable(getattr(cls, "load", None))

    def test_created_with_default_options(self) -> None:
        source = registry.create(self.kind, self.name)
        assert source.registry_name == self.name


for _info in registry.describe():
    _contract = DatasetKindContract if _info.kind == "dataset" else CONTRACTS[_info.kind]
    _cls_name = f"Test{_info.kind.title()}_{_info.name}"
    globals()[_cls_name] = type(_cls_name, (_contract,), {"name": _info.name})
