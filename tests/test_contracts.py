"""Every registered component runs its kind's contract (mmml_core.testing).

The classes are generated from the registry at collection time, so an installed plugin is
covered without anyone adding a test here (timm's habit of testing ``list_models()``).
Broken or conflicting plugins are included on purpose: their contract fails with the
plugin's own error instead of being skipped.
"""

from __future__ import annotations

from mmml_core import registry
from mmml_core.testing import CONTRACTS

for _info in registry.describe():
    _contract = CONTRACTS[_info.kind]
    _cls_name = f"Test{_info.kind.title()}_{_info.name}"
    globals()[_cls_name] = type(_cls_name, (_contract,), {"name": _info.name})
