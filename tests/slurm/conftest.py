"""The local SLURM cluster (tests/slurm/cluster.sh): tests that need it skip without one, or fail
when DIFFLAB_REQUIRE_SLURM=1 (CI starts the cluster and sets it)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def slurm() -> dict:
    """The environment for talking to the cluster; skips without one unless DIFFLAB_REQUIRE_SLURM=1 (CI)."""
    conf = os.environ.get("SLURM_CONF")
    problem = None
    if not conf or not shutil.which("sbatch"):
        problem = "SLURM_CONF is not set or sbatch is not installed"
    elif subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        problem = f"sinfo fails with SLURM_CONF={conf}"
    if problem:
        message = f"no SLURM cluster ({problem}): tests/slurm/cluster.sh start && . /tmp/difflab-slurm/env.sh"
        if os.environ.get("DIFFLAB_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return dict(os.environ)

