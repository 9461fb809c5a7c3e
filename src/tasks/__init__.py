"""Task table: name -> run(cfg) -> dict of metrics. Imported lazily so composing stays fast."""
from __future__ import annotations

import importlib
from typing import Callable

from omegaconf import DictConfig

from src.errors import ConfigError

TASKS = {
    "clip": "src.tasks.clip",
    "digits": "src.tasks.digits",
    "evaluate": "src.tasks.evaluate",
    "faces": "src.tasks.faces",
    "ti": "src.tasks.ti",
}


def get_task(name: str) -> Callable[[DictConfig], dict[str, float]]:
    """Return the `run` function of task `name`; an unknown name lists the valid ones."""
    if name not in TASKS:
        raise ConfigError(f"task.name={name!r}: expected one of {', '.join(sorted(TASKS))}")
    return importlib.import_module(TASKS[name]).run
