"""Hydra instantiates launchers and sweepers only from the `hydra_plugins` namespace package, which it scans at
start-up: the classes the `hydra/launcher` and `hydra/sweeper` options of conf/ name are declared here, and
written in src/sweeps. (Keep this light: every `python -m src.run` imports it.)"""
from src.sweeps import launchers, optuna_sweeper, sweeper


class BasicLauncher(launchers.BasicLauncher):
    """hydra/launcher=basic: src.sweeps.launchers.BasicLauncher."""


class LocalLauncher(launchers.LocalLauncher):
    """hydra/launcher=submitit_local: src.sweeps.launchers.LocalLauncher."""


class SlurmLauncher(launchers.SlurmLauncher):
    """hydra/launcher=submitit_slurm: src.sweeps.launchers.SlurmLauncher."""


class BasicSweeper(sweeper.BasicSweeper):
    """hydra/sweeper=basic: src.sweeps.sweeper.BasicSweeper."""


class OptunaSweeper(optuna_sweeper.OptunaSweeper):
    """hydra/sweeper=optuna: src.sweeps.optuna_sweeper.OptunaSweeper (optuna is imported when a study runs)."""
