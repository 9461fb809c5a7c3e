"""Weights named by a Hugging Face Hub id: taken from the local Hugging Face cache when they are there,
else downloaded into it on first use, as every Hugging Face tool does.

Before downloading, one short request asks the Hub (HF_ENDPOINT) for the repo, without retries, so that a
machine without network, an unknown id or a gated repo is a one-line error within seconds instead of
minutes of retries. HF_HUB_OFFLINE=1 never touches the network: an id that is not cached is an error.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

from src.errors import CheckpointError, ConfigError, DifflabError, first_line

T = TypeVar("T")
REACH_TIMEOUT_S = 10.0


def looks_like_hub_id(value: str) -> bool:
    """"name" or "owner/name": what a Hub id can be (a path with more parts, or starting with / . ~, cannot)."""
    return bool(value) and not value.startswith(("/", ".", "~")) and value.count("/") <= 1 and "\\" not in value


def offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.is_offline_mode() or flag.strip().upper() in ("1", "ON", "YES", "TRUE")


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def load_hub_model(repo_id: str, load: Callable[[bool], T], *, key: str, instead: str) -> T:
    """`load(local_files_only)` for the Hub id `repo_id`: from the cache if it is there (no network), else
    after one quick check that the Hub has the repo, downloading. Failures are one line naming `key`, the id,
    what failed, and `instead` (what to pass in its place: a local folder or file)."""
    where = f"{key}={repo_id!r}"
    try:
        return load(True)
    except DifflabError:  # cached, and wrong: the loader's own message
        raise
    except (OSError, ValueError) as err:  # not (completely) in the cache
        cached_error = err
    if offline():
        raise CheckpointError(f"{where}: not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
                              f"downloading it; pass {key}=<{instead}>, or download it where the Hub is reachable "
                              f"(hf download {repo_id})") from cached_error
    check_on_hub(repo_id, where=where, key=key, instead=instead)
    try:
        return load(False)
    except DifflabError:
        raise
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{where}: downloading from {endpoint()} failed ({first_line(err)}); "
                              f"pass {key}=<{instead}>") from err


def hub_snapshot(repo_id: str, allow_patterns: list[str], *, key: str, instead: str) -> Path:
    """The local folder of the files of `repo_id` that match `allow_patterns`, cached or downloaded."""
    from huggingface_hub import snapshot_download

    return Path(load_hub_model(
        repo_id, lambda local: snapshot_download(repo_id, allow_patterns=allow_patterns, local_files_only=local,
                                                 endpoint=endpoint()),
        key=key, instead=instead))


def check_on_hub(repo_id: str, *, where: str, key: str, instead: str) -> None:
    """One request for the repo's info, no retries: a ConfigError or CheckpointError when it fails."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi(endpoint=endpoint()).model_info(repo_id, timeout=REACH_TIMEOUT_S)
    except GatedRepoError as err:
        raise CheckpointError(f"{where}: the repo is gated on {endpoint()}; accept its licence there and log in "
                              f"(hf auth login), or pass {key}=<{instead}>") from err
    except RepositoryNotFoundError as err:
        raise ConfigError(f"{where}: no such model on {endpoint()}; expected a Hub id such as owner/name, or "
                          f"{key}=<{instead}>") from err
    except HfHubHTTPError as err:
        raise CheckpointError(f"{where}: {endpoint()} answered {first_line(err)}; pass {key}=<{instead}>") from err
    except (_transport_error(), OSError) as err:
        raise CheckpointError(f"{where}: not in the local Hugging Face cache and {endpoint()} cannot be reached "
                              f"({type(err).__name__}: {first_line(err)}); pass {key}=<{instead}>, or set "
                              "HF_HUB_OFFLINE=1 to use only what is cached") from err


def _transport_error() -> type[Exception]:
    """The HTTP client's base class of network failures (huggingface_hub 2 uses httpx2, earlier httpx)."""
    try:
        import httpx2 as client
    except ImportError:
        import httpx as client
    return client.TransportError
