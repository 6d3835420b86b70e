"""Dataset readers: the authors' SAIL-VOS-2D / TAO-Amodal JSON schemas, MOVi, RLE, OpenCV-style resizing."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

pytest.importorskip("pycocotools")

from diffusion_vas.models.datasets import read_complete_objects, read_sailvos  # noqa: E402
from diffusion_vas.models.datasets import rle  # noqa: E402
from diffusion_vas.models.datasets.resize import resize_linear  # noqa: E402

SAIL_SIZE = (800, 1280)


def box_mask(size, x0, y0, x1, y1):
    m = np.zeros(size, bool)
    m[y0:y1, x0:x1] = True
    return m


def sailvos_entry(obj_id, first_image, frames=3, size=SAIL_SIZE, hidden=(), empty_modal=False):
    """A track: full mask = box 100x200 moving right; visible = its left half (all of it in unhidden frames)."""
    seg, vis, names, ids = [], [], [], []
    for k in range(frames):
        x = 100 + 10 * k
        amodal = box_mask(size, x, 100, x + 200, 200)
        modal = np.zeros(size, bool) if (k in hidden or empty_modal) else box_mask(size, x, 100, x + 100, 200)
        seg.append(rle.encode(amodal))
        vis.append(rle.encode(modal))
        names.append(f"seq{obj_id}/{first_image + k:06d}.png")
        ids.append(first_image + k)
    return {"segmentation": seg, "visible_mask": vis, "image_file_names": names, "image_ids": ids,
            "obj_id": obj_id, "category_id": 7, "bbox": [[100 + 10 * k, 100, 200, 100] for k in range(frames)]}


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_sailvos_reader_decodes_tracks_and_keys(tmp_path):
    file = write(tmp_path / "val.json", [sailvos_entry(3, 10), sailvos_entry(4, 50, hidden=(1,))])
    data = read_sailvos(file, data_root=tmp_path / "frames")
    assert len(data) == 2
    clips = list(data)
    c = clips[1]
    assert c.modal.shape == c.amodal.shape == (3, 800, 1280) and c.modal.dtype == torch.bool
    assert c.frame_keys == ["(50, 4)", "(51, 4)", "(52, 4)"]
    assert c.name == "(50, 4)" and c.object_id == 4 and c.category_id == 7 and c.image_ids == [50, 51, 52]
    assert c.frame_files[0] == tmp_path / "frames" / "seq4/000050.png"
    assert int(c.amodal[0].sum()) == 200 * 100 and int(c.modal[0].sum()) == 100 * 100
    assert int(c.modal[1].sum()) == 0  # a fully hidden frame is kept
    assert c.amodal_boxes.tolist()[2] == [120.0, 100.0, 200.0, 100.0]
    assert read_complete_objects(file).clip(0).frame_keys[0] == "(10, 3)"


def test_sailvos_reader_skips_empty_entries_with_a_warning(tmp_path, caplog):
    file = write(tmp_path / "val.json", [sailvos_entry(1, 0, empty_modal=True), sailvos_entry(2, 10)])
    data = read_sailvos(file)
    with caplog.at_level(logging.WARNING):
        clips = list(data)
    assert [c.object_id for c in clips] == [2]
    assert data.skipped == [(0, "the visible mask is empty in every frame")]
    assert f"{file}, entry 0: skipped, the visible mask is empty in every frame" in caplog.text


@pytest.mark.parametrize("edit, message", [
    (lambda e: e.pop("visible_mask"), "entry 1: missing field 'visible_mask'"),
    (lambda e: e["image_ids"].pop(), "entry 1: field 'image_ids' has 2 items, but the track has 3 frames"),
    (lambda e: e["segmentation"][2].update(counts="%%%"), r"entry 1, segmentation\[2\]: invalid COCO RLE"),
    (lambda e: e.update(obj_id="4"), "entry 1: field 'obj_id' must be int"),
])
def test_sailvos_reader_errors_name_file_and_entry(tmp_path, edit, message):
    bad = sailvos_entry(4, 50)
    edit(bad)
    file = write(tmp_path / "val.json", [sailvos_entry(3, 10), bad])
    data = read_sailvos(file)
    with pytest.raises(ValueError, match=message) as error:
        list(data)
    assert str(file) in str(error.value)


def test_bad_json_files(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="x.json is not valid JSON"):
        read_sailvos(tmp_path / "x.json")
    with pytest.raises(ValueError, match="top level must be a list"):
        read_sailvos(write(tmp_path / "y.json", {"a": 1}))
    with pytest.raises(ValueError, match="does not exist"):
        read_sailvos(tmp_path / "missing.json")


def test_rle_round_trip_and_missing_pycocotools_message(monkeypatch):
    m = box_mask((5, 6), 2, 1, 5, 3)
    enc = rle.encode(m)
    assert enc == {"size": [5, 6], "counts": enc["counts"]} and isinstance(enc["counts"], str)
    assert (rle.decode(enc, "here") == m).all()
    import builtins
    real_import = builtins.__import__

    def no_pycocotools(name, *args, **kwargs):
        if name.startswith("pycocotools"):
            raise ImportError("no pycocotools")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pycocotools)
    with pytest.raises(RuntimeError, match=r"needs pycocotools.*diffusion-vas\[datasets\]"):
        rle.encode(m)


@pytest.mark.parametrize("src, dst", [((800, 1280), (256, 512)), ((256, 512), (800, 1280)), ((90, 172), (256, 512)),
                                      ((720, 1280), (256, 512))])
def test_resize_linear_is_bit_exact_with_opencv(src, dst):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    masks = (rng.random(src) > 0.5).astype(np.uint8)
    rgb = (rng.random(src + (3,)) * 255).astype(np.uint8)
    for x in (masks, rgb):
        assert (resize_linear(x, dst) == cv2.resize(x, dst[::-1])).all()
    f = rng.random(src).astype(np.float32)
    assert np.abs(resize_linear(f, dst) - cv2.resize(f, dst[::-1])).max() < 1e-4
