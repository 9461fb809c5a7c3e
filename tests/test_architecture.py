"""The layering the README's architecture section states, checked on the source: which package may import
which. A violation names the module and the import."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# Below the tasks, code receives plain objects and numbers: no Hydra, no OmegaConf, no task wiring.
LIBRARY = ("diffusion", "models", "data", "eval", "standins")
FORBIDDEN_BELOW_TASKS = ("hydra", "omegaconf", "src.tasks", "src.config", "src.run")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def files(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (SRC / pkg).rglob("*.py"))


def offending(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imports(path) if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("path", files(*LIBRARY), ids=lambda p: str(p.relative_to(SRC)))
def test_library_code_knows_no_config(path):
    assert offending(path, FORBIDDEN_BELOW_TASKS) == []


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_nothing_in_src_imports_the_tests(path):
    assert offending(path, ("tests", "helpers", "conftest")) == []


@pytest.mark.parametrize("path", files("config"), ids=lambda p: str(p.relative_to(SRC)))
def test_config_composes_without_torch(path):
    assert offending(path, ("torch", "lightning", "diffusers", "transformers")) == []


def test_task_modules_hold_wiring_only():
    """src/tasks: one module per task plus the table and the run context, each short."""
    modules = {p.stem for p in (SRC / "tasks").glob("*.py")}
    assert modules == {"__init__", "context", "clip", "digits", "evaluate", "faces", "ti"}
    for p in (SRC / "tasks").glob("*.py"):
        assert len(p.read_text().splitlines()) <= 130, p.name



def top_level_imports(path: Path) -> set[str]:
    """The modules a file imports when it is imported (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", [*files("sweeps"), SRC.parent / "hydra_plugins" / "difflab" / "__init__.py",
                                  SRC / "report.py"], ids=lambda p: p.name)
def test_sweeps_and_plugins_load_without_torch_or_optuna(path):
    """Hydra imports hydra_plugins (and so src/sweeps) in every `python -m src.run`, --help included: no torch
    anywhere in them, and optuna only inside the functions that run a study."""
    assert offending(path, ("torch", "lightning", "diffusers", "transformers")) == []
    assert not any(m == "optuna" or m.startswith("optuna.") for m in top_level_imports(path))
