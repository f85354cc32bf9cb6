"""catbrain's Hydra launcher plugin (``hydra/launcher=vectorized``): Hydra finds launchers in ``hydra_plugins``."""
