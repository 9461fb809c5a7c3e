"""Read the run record (name, group, job type, tags) and the config back from an offline W&B run's .wandb file."""
from __future__ import annotations

import struct
from pathlib import Path

_BLOCK, _HEADER = 32768, 7  # the file is a LevelDB-style log: 32 KiB blocks of (crc, length, type) records


def _chunks(data: bytes):
    pos = _HEADER  # ":W&B" + magic + version
    record = b""
    while pos + 7 <= len(data):
        room = _BLOCK - (pos % _BLOCK)
        if room < 7:
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        record += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full or last fragment
            yield record
            record = b""


def run_record(run_dir: Path):
    """The RunRecord of the offline run in run_dir (wandb/offline-run-*)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = Path(run_dir).glob("run-*.wandb")
    for chunk in _chunks(path.read_bytes()):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(chunk)
        if rec.WhichOneof("record_type") == "run":
            return rec.run
    raise AssertionError(f"no run record in {path}")


def run_config(run_dir: Path) -> dict:
    """The run's config as W&B holds it: the run record's and every later config update, merged."""
    import json

    from wandb.proto import wandb_internal_pb2

    (path,) = Path(run_dir).glob("run-*.wandb")
    config: dict = {}
    for chunk in _chunks(path.read_bytes()):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(chunk)
        kind = rec.WhichOneof("record_type")
        items = rec.run.config.update if kind == "run" else rec.config.update if kind == "config" else []
        for item in items:
            config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config
