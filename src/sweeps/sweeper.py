"""hydra/sweeper=basic (the default): Hydra's grid sweeper, with difflab's failure handling. The launcher has
printed one line per failed job and a summary; this makes a failure the command's exit status (one line,
no traceback), stops after a failed batch with sweep.fail_fast, and writes nothing on a dry run."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper as HydraBasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from src.sweeps.launchers import SweepFailed, sweep_options

log = logging.getLogger(__name__)


class BasicSweeper(HydraBasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]),
                                              self.max_batch_size)
        options = sweep_options(self.config, slurm=getattr(self.launcher, "_EXECUTOR", None) == "slurm")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        if not options.dry_run:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns: List[Sequence[JobReturn]] = []
        initial_job_idx, failed, total = 0, 0, 0
        while not self.is_done():
            batch = self.get_job_batch()  # composed and validated by the launcher, every job before the first runs
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            failed += sum(r.status == JobStatus.FAILED for r in results)
            total += len(batch)
            initial_job_idx += len(batch)
            returns.append(results)
            if failed and options.fail_fast:
                break
        if failed:
            raise SweepFailed(f"{failed} of {total} job(s) failed (above); their errors are in <job dir>/error.txt, "
                              f"their states in: python -m src.report {sweep_dir}")
        return returns
