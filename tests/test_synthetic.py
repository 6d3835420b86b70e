"""Synthetic benchmark generator: determinism, consistent ground truth, folder round trip, the shipped example."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from diffusion_vas.models.evaluation.synthetic import (
    SHAPES, BenchmarkClip, SyntheticSpec, generate_benchmark, generate_clip, read_clip, read_clips, write_clip,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "example_clips" / "synthetic_occlusion"
SMALL = SyntheticSpec(frames=9, height=48, width=96)
FIELDS = ("rgb", "modal", "amodal", "amodal_rgb", "occluder", "background", "depth")


def _assert_same(a: BenchmarkClip, b: BenchmarkClip) -> None:
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_same_seed_same_clip_and_other_seed_differs():
    _assert_same(generate_clip(SMALL, 3), generate_clip(SMALL, 3))
    assert not torch.equal(generate_clip(SMALL, 3).rgb, generate_clip(SMALL, 4).rgb)


def test_shapes_and_types():
    spec = dataclasses.replace(SMALL, objects=2, occluders=2)
    clip = generate_clip(spec, 0)
    t, h, w = spec.frames, spec.height, spec.width
    assert clip.rgb.shape == (t, h, w, 3) and clip.rgb.dtype == torch.float32
    assert clip.modal.shape == clip.amodal.shape == (2, t, h, w) and clip.modal.dtype == torch.bool
    assert clip.amodal_rgb.shape == (2, t, h, w, 3)
    assert clip.occluder.shape == (t, h, w) and clip.occluder.dtype == torch.bool
    assert clip.background.shape == (t, h, w, 3) and clip.depth.shape == (t, h, w)
    assert 0 <= clip.rgb.min() and clip.rgb.max() <= 1
    assert [o["name"] for o in clip.meta["objects"]] == ["obj1", "obj2"]


@pytest.mark.parametrize("seed", range(4))
def test_ground_truth_is_consistent(seed):
    clip = generate_clip(dataclasses.replace(SMALL, objects=2, occluders=2), seed)
    assert not (clip.modal & ~clip.amodal).any(), "modal must be a subset of amodal"
    assert clip.amodal.flatten(2).any(-1).all(), "every object is in every frame"
    assert not (clip.modal & clip.occluder).any(), "occluders hide what they cover"
    assert not (clip.modal[0] & clip.amodal[1]).any(), "the nearer object hides the farther one"
    for i in range(2):
        visible = clip.modal[i]
        assert torch.equal(clip.amodal_rgb[i][visible], clip.rgb[visible])
        assert (clip.amodal_rgb[i][~clip.amodal[i]] == 0).all()
    # pseudo-depth: occluders nearest, nearer objects above farther ones, background farthest
    assert (clip.depth[clip.occluder] == clip.depth.max()).all()
    only = [clip.modal[i] for i in range(2)]
    assert clip.depth[only[1]].min() > clip.depth[only[0]].max() > clip.depth[~clip.amodal.any(0) & ~clip.occluder].max()


def test_hidden_rgb_is_the_objects_own_texture():
    """Without occluders the same seed draws the same object, so its pixels are the truth for the hidden part."""
    occluded = generate_clip(SMALL, 2)
    bare = generate_clip(dataclasses.replace(SMALL, occluders=0), 2)
    hidden = occluded.amodal[0] & ~occluded.modal[0]
    assert hidden.any()
    assert torch.equal(occluded.amodal, bare.amodal)
    assert torch.equal(bare.modal, bare.amodal)
    assert torch.equal(occluded.amodal_rgb[0][hidden], bare.rgb[hidden])
    assert not torch.equal(occluded.rgb[hidden], bare.rgb[hidden])
    assert torch.equal(occluded.background, bare.background)


def test_occlusion_kinds_occur():
    """Across a few seeds the benchmark has partly and fully occluded frames."""
    partial = full = 0
    for clip in generate_benchmark(6, SMALL, seed=0):
        visible, whole = clip.modal[0].flatten(1).sum(1), clip.amodal[0].flatten(1).sum(1)
        full += int(((visible == 0) & (whole > 0)).sum())
        partial += int(((visible > 0) & (visible < whole)).sum())
    assert partial > 0 and full > 0


def test_every_shape_renders():
    for shape in SHAPES:
        clip = generate_clip(dataclasses.replace(SMALL, shapes=(shape,), occluders=0), 1)
        assert clip.meta["objects"][0]["shape"] == shape
        assert clip.amodal.sum() > 0


@pytest.mark.parametrize("objects", [1, 2])
def test_folder_round_trip_is_exact(tmp_path, objects):
    clip = generate_clip(dataclasses.replace(SMALL, objects=objects), 5)
    folder = write_clip(clip, tmp_path / "clip")
    if objects == 1:
        assert (folder / "modal" / "00000.png").is_file()
    else:
        assert (folder / "modal" / "obj2" / "00008.png").is_file()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["seed"] == 5 and meta["frames"] == SMALL.frames
    back = read_clip(folder)
    _assert_same(clip, back)
    assert back.name == "clip"


def test_minimal_folder_and_clip_collections(tmp_path):
    clip = generate_clip(SMALL, 0)
    minimal = BenchmarkClip(rgb=clip.rgb, modal=clip.modal, amodal=clip.amodal)
    write_clip(minimal, tmp_path / "set" / "b")
    write_clip(clip, tmp_path / "set" / "a")
    clips = read_clips(tmp_path / "set")
    assert [c.name for c in clips] == ["a", "b"]
    assert clips[1].depth is None and clips[1].amodal_rgb is None
    assert torch.equal(clips[1].amodal, clip.amodal)
    assert len(read_clips(tmp_path / "set" / "a")) == 1


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="No clip found"):
        read_clips(tmp_path)
    write_clip(generate_clip(SMALL, 0), tmp_path / "clip")
    for file in sorted((tmp_path / "clip" / "amodal").glob("*.png"))[-2:]:
        file.unlink()
    with pytest.raises(ValueError, match="amodal"):
        read_clip(tmp_path / "clip")


def test_spec_errors():
    with pytest.raises(ValueError, match="shapes"):
        SyntheticSpec(shapes=("blob",))
    with pytest.raises(ValueError, match="frames"):
        SyntheticSpec(frames=0)
    with pytest.raises(ValueError, match="object_size"):
        SyntheticSpec(object_size=(0.3, 0.1))


def test_shipped_example():
    clip = read_clip(EXAMPLE)
    assert clip.rgb.shape == (25, 128, 256, 3)
    assert clip.modal.shape == (1, 25, 128, 256)
    assert not (clip.modal & ~clip.amodal).any()
    visible, whole = clip.modal[0].flatten(1).sum(1), clip.amodal[0].flatten(1).sum(1)
    assert ((visible == 0) & (whole > 0)).any() and ((visible > 0) & (visible < whole)).any()
    assert sum(f.stat().st_size for f in EXAMPLE.rglob("*.png")) < 1_500_000


def test_motion_scales_the_paths():
    def centre_travel(motion: float) -> float:
        clip = generate_clip(dataclasses.replace(SMALL, motion=motion, occluders=0), 1)
        xs = torch.arange(SMALL.width, dtype=torch.float32)
        centres = (clip.amodal[0].sum(1) * xs).sum(1) / clip.amodal[0].sum((1, 2))
        return float(centres.max() - centres.min())

    assert centre_travel(0.0) < 0.1 * SMALL.width < 0.3 * SMALL.width < centre_travel(1.0)
    assert centre_travel(0.5) < centre_travel(1.0)
