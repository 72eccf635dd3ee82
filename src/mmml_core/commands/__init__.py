"""``mmml-bench`` verbs, one module each (imported only when that verb runs)."""
