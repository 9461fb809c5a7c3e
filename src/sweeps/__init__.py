"""Sweeps: difflab's launchers and sweepers (conf/hydra/launcher, conf/hydra/sweeper)."""
