"""Helpers shared by the tests: tiny-run overrides, SLURM job helpers, W&B record readers."""
