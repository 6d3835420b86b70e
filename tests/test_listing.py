"""Listing and queueing cost nothing: ``LoadModalMasks.IS_CHANGED`` looks at names, sizes and modification times
(never at the bytes), listing the nodes places no example, and the example clip is placed once, when the pack is
loaded inside ComfyUI, and then only looked at."""

from __future__ import annotations

import builtins
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

import diffusion_vas
from diffusion_vas import NODE_CLASS_MAPPINGS
from diffusion_vas.models.host import policy
from diffusion_vas.nodes import examples, masks

CLIP = "synthetic_occlusion"
MTIME_NS = 1_700_000_000_000_000_000


def is_changed(folder, **settings):
    return masks.LoadModalMasks.IS_CHANGED(folder=str(folder), object_id=0, **settings)


def mask_folder(tmp_path) -> Path:
    """Three 10x8 binary PNGs with fixed modification times."""
    folder = tmp_path / "masks"
    folder.mkdir()
    for t in range(3):
        Image.fromarray(np.full((8, 10), 255 * (t % 2), np.uint8)).save(folder / f"{t}.png")
        os.utime(folder / f"{t}.png", ns=(MTIME_NS, MTIME_NS + t))
    return folder


def test_is_changed_follows_names_sizes_and_modification_times(tmp_path):
    folder = mask_folder(tmp_path)
    first = folder / "0.png"
    base = is_changed(folder)
    assert is_changed(folder) == base  # nothing changed

    (folder / "notes.txt").write_text("not an image")  # not one of the files `load` reads
    assert is_changed(folder) == base

    os.utime(first, ns=(MTIME_NS, MTIME_NS + 1))  # modification time
    assert is_changed(folder) != base
    os.utime(first, ns=(MTIME_NS, MTIME_NS))
    assert is_changed(folder) == base

    original = first.read_bytes()
    first.write_bytes(original + b"\0")  # size (same modification time)
    os.utime(first, ns=(MTIME_NS, MTIME_NS))
    assert is_changed(folder) != base
    first.write_bytes(original)
    os.utime(first, ns=(MTIME_NS, MTIME_NS))
    assert is_changed(folder) == base

    Image.fromarray(np.full((8, 10), 255, np.uint8)).save(first)  # new content: written now, a new mtime
    assert is_changed(folder) != base
    first.write_bytes(original)
    os.utime(first, ns=(MTIME_NS, MTIME_NS))

    shutil.copy2(first, folder / "3.png")  # a file added
    assert is_changed(folder) != base
    (folder / "3.png").unlink()  # and removed again
    assert is_changed(folder) == base
    (folder / "2.png").rename(folder / "2b.png")  # renamed
    assert is_changed(folder) != base
    (folder / "2b.png").rename(folder / "2.png")
    (folder / "1.png").unlink()  # removed
    assert is_changed(folder) != base


def test_is_changed_follows_the_settings(tmp_path):
    folder = mask_folder(tmp_path)
    base = is_changed(folder)
    changed = [is_changed(folder, start_frame=1), is_changed(folder, frame_count=2), is_changed(folder, every_nth=2),
               is_changed(folder, mask_format="labels")]
    assert base not in changed and len(set(changed)) == len(changed)
    assert is_changed(folder, start_frame=0, frame_count=0, every_nth=1, mask_format="auto") == base


def test_is_changed_reads_no_file(tmp_path, monkeypatch):
    folder = mask_folder(tmp_path)
    expected = is_changed(folder)

    def refuse(*args, **kwargs):
        raise AssertionError(f"IS_CHANGED opened a file: {args}")

    for owner, name in ((Path, "read_bytes"), (Path, "read_text"), (Path, "open"), (builtins, "open"),
                        (io, "open"), (os, "open")):
        monkeypatch.setattr(owner, name, refuse)
    assert is_changed(folder) == expected


def test_is_changed_never_raises(tmp_path, monkeypatch):
    folder = mask_folder(tmp_path)
    missing = is_changed(tmp_path / "missing")
    answers = [missing, is_changed(""), is_changed(folder / "0.png"), is_changed(str(tmp_path) + "/bad\0name"),
               is_changed(folder, start_frame=99, every_nth=0)]
    assert all(isinstance(a, str) for a in answers)
    assert missing != is_changed(folder)

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(masks, "image_files", unreadable)  # `load` is the one that reports it
    assert isinstance(is_changed(folder), str) and is_changed(folder) != missing


# -- the example clip ------------------------------------------------------------------------------------------------

class InputFolderHost(policy.Host):
    def __init__(self, folder):
        self.folder = folder

    def input_directory(self):
        return self.folder


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """ComfyUI's input folder in ``tmp_path / 'input'``, a fresh module state, and counters of the copies and
    encodes (the encoder writes a stand-in file: PyAV is not needed)."""
    calls = {"copy": 0, "encode": 0}
    real_copy = examples.copy_clip

    def copy(clip, target):
        calls["copy"] += 1
        real_copy(clip, target)

    def encode(frames_folder, target, fps=examples.VIDEO_FPS):
        calls["encode"] += 1
        target.write_bytes(b"mp4")

    input_dir = tmp_path / "input"
    input_dir.mkdir()
    monkeypatch.setattr(policy, "_host", InputFolderHost(input_dir))
    monkeypatch.setattr(examples, "_checked", set())
    monkeypatch.setattr(examples, "copy_clip", copy)
    monkeypatch.setattr(examples, "encode_video", encode)
    return input_dir, calls


def list_nodes():
    """What ``GET /object_info`` asks of each of the pack's nodes (ComfyUI calls INPUT_TYPES twice per node)."""
    return {name: (cls.INPUT_TYPES(), list(cls.INPUT_TYPES())) for name, cls in NODE_CLASS_MAPPINGS.items()}


def test_listing_the_nodes_places_nothing(counted):
    input_dir, calls = counted
    list_nodes()
    list_nodes()
    assert calls == {"copy": 0, "encode": 0} and list(input_dir.iterdir()) == []


def test_the_example_is_placed_once_per_input_folder(counted, monkeypatch):
    input_dir, calls = counted
    video = input_dir / examples.example_video_name(CLIP)
    masks_folder = input_dir / examples.example_folder(CLIP, "modal")
    examples.install_examples()
    assert calls == {"copy": 1, "encode": 1} and video.read_bytes() == b"mp4"
    assert sorted(p.name for p in masks_folder.iterdir()) == sorted(
        p.name for p in (examples.EXAMPLES_DIR / CLIP / "modal").iterdir())
    examples.install_examples()
    list_nodes()
    assert calls == {"copy": 1, "encode": 1}

    monkeypatch.setattr(examples, "_checked", set())  # a new process: the files are there, nothing is done
    examples.install_examples()
    assert calls == {"copy": 1, "encode": 1}

    video.write_bytes(b"the user's own video")  # the user's files are never overwritten
    monkeypatch.setattr(examples, "_checked", set())
    examples.install_examples()
    assert calls == {"copy": 1, "encode": 1} and video.read_bytes() == b"the user's own video"

    video.unlink()  # deleted: placed again at the next start, and only what is missing
    monkeypatch.setattr(examples, "_checked", set())
    examples.install_examples()
    assert calls == {"copy": 1, "encode": 2}


def test_a_failed_placement_is_a_warning_and_leaves_nothing_half_written(counted, monkeypatch, caplog):
    input_dir, calls = counted
    folder = input_dir / examples.INPUT_SUBFOLDER / CLIP
    real_copytree = shutil.copytree

    def copy_then_fail(source, target, **kwargs):
        real_copytree(Path(source) / "rgb", Path(target) / "rgb")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", copy_then_fail)
    with caplog.at_level(logging.WARNING):
        examples.install_examples()
    assert "could not place the example clip synthetic_occlusion" in caplog.text
    assert "No space left on device" in caplog.text
    assert list((input_dir / examples.INPUT_SUBFOLDER).iterdir()) == []  # no partial folder, no half clip
    assert calls == {"copy": 1, "encode": 0}

    monkeypatch.setattr(shutil, "copytree", real_copytree)  # the next start places it
    monkeypatch.setattr(examples, "_checked", set())
    examples.install_examples()
    assert calls == {"copy": 2, "encode": 1}
    assert sorted(p.name for p in (folder / "modal").iterdir()) == sorted(
        p.name for p in (examples.EXAMPLES_DIR / CLIP / "modal").iterdir())


def test_a_failed_encode_removes_its_partial_file(tmp_path, monkeypatch):
    def write_some_then_fail(path, frames, fps, crf):
        Path(path).write_bytes(b"half an mp4")
        raise RuntimeError("encoder failed")

    monkeypatch.setattr(examples, "write_animation", write_some_then_fail)
    target = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="encoder failed"):
        examples.encode_video(examples.EXAMPLES_DIR / CLIP / "rgb", target)
    assert list(tmp_path.iterdir()) == []


FAKE_COMFYUI = """
import json, sys, types
from pathlib import Path

INPUT = Path(sys.argv[1])
folder_paths = types.ModuleType("folder_paths")
folder_paths.models_dir = str(INPUT.parent / "models")
folder_paths.add_model_folder_path = lambda kind, path: None
folder_paths.get_folder_paths = lambda kind: [str(INPUT.parent / "models" / kind)]
folder_paths.get_input_directory = lambda: str(INPUT)
comfy = types.ModuleType("comfy")
for name in ("model_management", "utils", "model_patcher"):
    module = types.ModuleType(f"comfy.{name}")
    setattr(comfy, name, module)
    sys.modules[f"comfy.{name}"] = module
comfy.model_patcher.ModelPatcher = object
version = types.ModuleType("comfyui_version")
version.__version__ = "0.33.0"
sys.modules.update(folder_paths=folder_paths, comfy=comfy, comfyui_version=version)

import diffusion_vas.models as engine  # the encoder counted before the nodes bind it
calls = {"encode": 0}

def write_animation(path, frames, fps, crf=16):
    calls["encode"] += 1
    Path(path).write_bytes(b"mp4")

engine.write_animation = write_animation
import diffusion_vas  # what ComfyUI does: import the pack, read its mappings
mappings = diffusion_vas.NODE_CLASS_MAPPINGS
assert Path(diffusion_vas.__file__).resolve().parent == Path(sys.argv[2]), diffusion_vas.__file__
at_load = dict(calls)
for _ in range(2):
    for cls in mappings.values():
        cls.INPUT_TYPES()
print(json.dumps({"at_load": at_load, "after_listing": calls}))
"""


def test_inside_comfyui_the_pack_places_the_example_when_loaded(tmp_path):
    """Two starts of a stand-in ComfyUI (its modules faked): the first places the clip while the pack loads, the
    second finds it; listing the nodes never encodes."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    script = tmp_path / "fake_comfyui.py"
    script.write_text(textwrap.dedent(FAKE_COMFYUI))
    package_path = os.pathsep.join([str(Path(diffusion_vas.__file__).parent.parent),  # this checkout, as imported
                                    os.environ.get("PYTHONPATH", "")])
    starts = []
    for _ in range(2):
        result = subprocess.run([sys.executable, str(script), str(input_dir), str(REPO)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=600,
                                env={**os.environ, "PYTHONPATH": package_path})
        assert result.returncode == 0, result.stderr
        starts.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert starts[0] == {"at_load": {"encode": 1}, "after_listing": {"encode": 1}}
    assert starts[1] == {"at_load": {"encode": 0}, "after_listing": {"encode": 0}}
    assert (input_dir / examples.example_video_name(CLIP)).read_bytes() == b"mp4"
    assert (input_dir / examples.example_folder(CLIP, "modal")).is_dir()
