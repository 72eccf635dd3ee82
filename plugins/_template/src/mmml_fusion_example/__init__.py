"""An example mmml fusion plugin (copy ``plugins/_template`` to start your own)."""

__all__: list[str] = []
