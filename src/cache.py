"""Artifacts made once and reused (embedded data sets, judges, stand-in models): built in a private folder,
published with one rename. The first writer wins; a crashed or killed build leaves only a hidden
`.<name>.tmp-*` folder, never anything at the final path that looks finished."""
from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def build_once(final: str | Path, build: Callable[[Path], object], *, what: str | None = None) -> Path:
    """`final` if it exists, else `build(tmp)` into an empty private sibling renamed to `final` when it
    returns. Concurrent builders each build; one rename succeeds and the others discard their copy."""
    final = Path(final).expanduser()
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    start = time.perf_counter()
    try:
        build(tmp)
        try:
            os.rename(tmp, final)  # atomic; fails when another writer published first
        except OSError:
            if not final.exists():
                raise
            log.info("%s: built by another process meanwhile; using that one", final)
        else:
            log.info("built %s in %.0f s: %s", what or final.name, time.perf_counter() - start, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
