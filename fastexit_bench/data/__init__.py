"""Dataset registry and loaders: declarations in ``catalog/``, reading in ``sources``/``loading``."""
