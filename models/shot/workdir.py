"""A run's working folder: what is kept so a killed run can continue (``--resume``) without redoing work.

``<out>/.diffusion-vas/`` holds

* ``run.json``: the settings that decide the results and a fingerprint of every input (file names, sizes and
  modification times of the frames, masks, depth frames and checkpoints). ``--resume`` compares it with the new
  run and refuses, naming each difference, when they do not match;
* the processing-size stores (safetensors): the model conditions, and each object's stage-1 and stage-2 model
  output as soon as it is sampled (a few hundred KB to a few hundred MB per shot, never frames at input size);
* ``written/<what>``: one marker per finished output group (an object's masks, layers, ...), written after its
  last file is renamed into place.

Every store and marker is written under a temporary name and renamed, so a kill leaves either the old state or
the new one. When a run completes, the stores are removed and ``complete`` is marked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

WORK_FOLDER = ".diffusion-vas"
FORMAT_VERSION = 1


def fingerprint_files(paths: list[Path]) -> str:
    """A short digest of files' names, sizes and modification times (content changes change one of them)."""
    digest = hashlib.sha256()
    for path in paths:
        stat = Path(path).stat()
        digest.update(f"{Path(path).name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def fingerprint_tree(path: Path, suffixes: tuple[str, ...] = (".json", ".safetensors", ".bin", ".pth", ".pt")) -> str:
    """A digest of a checkpoint (a file, or a folder's model files)."""
    path = Path(path)
    if path.is_file():
        return fingerprint_files([path])
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes)
    return fingerprint_files(files)


class WorkFolder:
    """The working folder of the run writing into ``out``."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / WORK_FOLDER

    # -- the run's identity ------------------------------------------------------------------------------------

    def start(self, record: dict, resume: bool) -> bool:
        """Begins (or, with ``resume``, continues) the run described by ``record`` (JSON-able). Returns whether a
        previous run's state is reused. Raises ValueError naming every difference when ``resume`` finds another
        run's record, and when there is nothing to resume."""
        record = json.loads(json.dumps({"version": FORMAT_VERSION, **record}))  # as stored: lists, not tuples
        existing = self._read_record()
        if resume:
            if existing is None:
                raise ValueError(f"--resume: {self.out} holds no run to continue (no {WORK_FOLDER}/run.json); run "
                                 "without --resume.")
            differences = _differences(existing, record)
            if differences:
                raise ValueError(f"--resume: this run differs from the one in {self.out}: " + "; ".join(differences)
                                 + ". Run with the same arguments and inputs, or choose another --out.")
            return True
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        self._write_json("run.json", record)
        return False

    def _read_record(self) -> dict | None:
        try:
            return json.loads((self.path / "run.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise ValueError(f"--resume: {self.path / 'run.json'} is unreadable ({err}); run without --resume.") \
                from err

    # -- stores and markers ------------------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return (self.path / f"{name}.safetensors").is_file()

    def save(self, name: str, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
        """Writes ``name.safetensors`` atomically (tensors made contiguous; ``meta`` as JSON metadata)."""
        path = self.path / f"{name}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"meta": json.dumps(meta or {})})
        os.replace(tmp, path)

    def load(self, name: str) -> tuple[dict[str, torch.Tensor], dict]:
        path = self.path / f"{name}.safetensors"
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), "pt") as handle:
                meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"--resume: {path} is unreadable ({err}); run again without --resume.") from err
        return tensors, meta

    def done(self, marker: str) -> bool:
        return (self.path / "written" / marker).is_file()

    def mark(self, marker: str) -> None:
        path = self.path / "written" / marker
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text("done\n")
        os.replace(tmp, path)

    def spill_folder(self) -> Path:
        """Where large temporary data (depth at the input size) is spilled."""
        folder = self.path / "spill"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def complete(self) -> None:
        """Removes the stores and spills, keeping ``run.json`` and the markers, and marks the run complete."""
        for path in self.path.iterdir():
            if path.is_file() and path.suffix == ".safetensors":
                path.unlink()
            elif path.is_dir() and path.name in ("spill", "stage1", "stage2"):
                shutil.rmtree(path)
        self.mark("complete")

    @property
    def is_complete(self) -> bool:
        return self.done("complete")

    def _write_json(self, name: str, value: dict) -> None:
        path = self.path / name
        tmp = path.with_name(f".{name}.partial")
        tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
        os.replace(tmp, path)


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two records (nested dicts)."""
    out = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{name}.")
        elif a != b:
            out.append(f"{name} was {a!r}, now {b!r}")
    return out
