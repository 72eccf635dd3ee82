"""Components shipped with ``mmml-core``, registered through its own entry points."""
