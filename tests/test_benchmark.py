"""Real-dataset benchmarks: the authors' scoring arithmetic and the strict protocol by hand, the runner (fake
samplers and the tiny checkpoints), resuming, sharding, and the ``benchmark`` CLI."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pycocotools")

from conftest import TINY  # noqa: E402
from diffusion_vas.cli import main  # noqa: E402
from diffusion_vas.models.datasets import read_sailvos, read_tao_amodal, rle  # noqa: E402
from diffusion_vas.models.datasets.resize import resize_linear  # noqa: E402
from diffusion_vas.models.evaluation import benchmark as B  # noqa: E402
from diffusion_vas.models.evaluation.benchmark_scoring import (  # noqa: E402
    box_iou, score_results, strict_box_iou,
)
from test_datasets import box_mask, write  # noqa: E402

SAIL = (800, 1280)
TAO = (720, 1280)
EPS = 1e-6


def sail_track(obj_id, first_image, modal_boxes, amodal_box=(100, 100, 300, 200), size=SAIL):
    """Full mask: a fixed box; visible masks: one box per frame (None = fully hidden)."""
    frames = len(modal_boxes)
    seg = [rle.encode(box_mask(size, *amodal_box)) for _ in range(frames)]
    vis = [rle.encode(box_mask(size, *b) if b else np.zeros(size, bool)) for b in modal_boxes]
    ids = list(range(first_image, first_image + frames))
    return {"segmentation": seg, "visible_mask": vis, "image_ids": ids, "obj_id": obj_id, "category_id": 1,
            "image_file_names": [f"v{obj_id}/{i:05d}.png" for i in ids]}


def hand_clips(tmp_path):
    """Clip A (3 frames, left half visible) and clip B (2 frames, the second fully hidden)."""
    left = (100, 100, 200, 200)
    return write(tmp_path / "val.json", [sail_track(1, 0, [left, left, left]), sail_track(2, 10, [left, None])])


def hand_predictions():
    full = box_mask(SAIL, 100, 100, 300, 200)
    half_hidden = box_mask(SAIL, 100, 100, 250, 200)
    empty = np.zeros(SAIL, bool)
    preds = {"(0, 1)": full, "(1, 1)": empty, "(2, 1)": half_hidden, "(10, 2)": full, "(11, 2)": full}
    return {k: {"diffvas_res_rle": rle.encode(v)} for k, v in preds.items()}


# Hand arithmetic (full mask 200x100 = 20000 px, visible left half 10000 px, hidden right half 100x100 whose
# 5x5 erosion is 96x96 = 9216 px; the half-hidden prediction's hidden part 50x100 erodes to 46x96 = 4416 px):
#   clip A: frame 0 exact (IoU 1, occ 1); frame 1 empty: authors OR the visible mask -> IoU 0.5, occ 0 (dropped),
#           strict IoU 0, occ 0 (a miss); frame 2 half the hidden part: IoU 0.75, occ 4416 / 9216.
#   clip B: both frames exact (frame 1 fully hidden: occ region = whole mask, exact) -> 1 everywhere.
OCC2 = 4416 / 9216
AUTHORS_MIOU = (1 + 0.5 + 0.75 + 1 + 1) / 5
AUTHORS_OCC = (1 + OCC2 + 1 + 1) / 4
STRICT_MIOU = ((1 + 0 + 0.75) / 3 + 1) / 2
STRICT_OCC = ((1 + 0 + OCC2) / 3 + 1) / 2


def test_sailvos_scoring_by_hand(tmp_path):
    data = read_sailvos(hand_clips(tmp_path))
    s = score_results(data.clips(), hand_predictions(), "mask", (800, 1280), buckets=(0, 0.3, 0.6, 1))
    assert s["authors"]["miou"] == pytest.approx(AUTHORS_MIOU, abs=1e-9)
    assert s["authors"]["miou_occ"] == pytest.approx(AUTHORS_OCC, abs=1e-9)
    assert (s["authors"]["frames_occ_scored"], s["authors"]["frames_occ_dropped"],
            s["authors"]["frames_occ_missed"]) == (4, 1, 1)
    assert s["strict"]["miou"] == pytest.approx(STRICT_MIOU, abs=1e-12)
    assert s["strict"]["miou_occ"] == pytest.approx(STRICT_OCC, abs=1e-12)
    assert s["strict"]["miss_rate_occ"] == pytest.approx((1 / 3 + 0) / 2)
    assert s["strict"]["miou_occ_full"] == pytest.approx(1.0)  # only clip B has a fully hidden frame
    # visibility: A = 0.5 per frame, B = (0.5 + 0) / 2 = 0.25 (each minus the 1e-6 in the union)
    low, mid, high = s["buckets"]
    assert (low["clips"], mid["clips"], high["clips"]) == (1, 1, 0)
    assert low["authors"]["miou"] == pytest.approx(1.0, abs=1e-9)
    assert mid["authors"]["miou"] == pytest.approx(0.75, abs=1e-9) and math.isnan(high["authors"]["miou"])


def test_sailvos_scoring_matches_the_authors_arithmetic_with_upsampling(tmp_path):
    """Predictions at 256x512 are upsampled (cv2 INTER_LINEAR), OR-ed, eroded, dropped as the authors do."""
    cv2 = pytest.importorskip("cv2")
    file = write(tmp_path / "val.json", [sail_track(5, 0, [(100, 100, 200, 200), (103, 101, 180, 199), None],
                                                   amodal_box=(97, 98, 311, 203))])
    clip = read_sailvos(file).clip(0)
    rng = np.random.default_rng(1)
    small = []
    for k in range(3):  # a blob near the object, ragged edges
        m = np.zeros((256, 512), np.uint8)
        m[30 + k:66, 30:95 + 3 * k] = 1
        m[rng.random((256, 512)) > 0.995] = 1
        small.append(m)
    results = {key: {"diffvas_res_rle": rle.encode(m)} for key, m in zip(clip.frame_keys, small)}
    ours = score_results([clip], results, "mask", (800, 1280))["authors"]

    modal, amodal = clip.modal.numpy().astype(int), clip.amodal.numpy().astype(int)
    pred = np.stack([cv2.resize(m, (1280, 800), interpolation=cv2.INTER_LINEAR) for m in small])
    pred = np.logical_or(pred, modal).astype(int)
    iou = (amodal & pred).sum((1, 2)) / ((amodal | pred).sum((1, 2)) + EPS)

    def erode(x):
        k = np.ones((5, 5), np.uint8)
        return np.stack([cv2.erode((f * 255).astype(np.uint8), k) for f in x]) // 255

    ga, pa = erode(amodal & (1 - modal)), erode(pred & (1 - modal))
    occ = (ga & pa).sum((1, 2)) / ((ga | pa).sum((1, 2)) + EPS)
    assert ours["miou"] == pytest.approx(iou.mean(), abs=1e-12)
    assert ours["miou_occ"] == pytest.approx(occ[occ >= EPS].mean(), abs=1e-12)


def tao_track(track_id=7, video_id=3, frames=3, modal=(100, 200, 300, 400), size=TAO, boxes=None):
    rles = [rle.encode(box_mask(size, *modal))["counts"] for _ in range(frames)]
    return {"track_id": track_id, "video_id": video_id, "category_id": 2, "height": size[0], "width": size[1],
            "file_names": [f"val/v{video_id}/frame{k:04d}.jpg" for k in range(frames)], "rles": rles,
            "amodal_bboxes": boxes or [[100, 200, 300, 200]] * frames}


def test_tao_box_scoring_by_hand(tmp_path):
    boxes = [[0, 0, 10, 10], [-20, 10, 40, 20], [5, 5, 0, 0], [0, 0, 10, 10]]
    file = write(tmp_path / "tao.json", [tao_track(frames=4, boxes=boxes)])
    offsets = write(tmp_path / "offsets.json", {"3": 5})
    clip = read_tao_amodal(file, track_offsets=offsets).clip(0)
    assert clip.frame_keys[0] == "(3, 'frame0000.jpg', '3')"  # rel track id = 7 - 5 + 1
    preds = [[0, 0, 5, 10],      # IoU exactly 0.5: not above 0.5 (strictly above)
             [-10, 10, 30, 20],  # outside the frame: 600 / 800 = 0.75, not above 0.75
             [0, 0, 0, 0],       # zero union: 0 for the authors
             [1, 1, 8, 8]]       # 64 / 100 = 0.64
    raw = [[0, 0, 5, 10], [-10, 10, 30, 20], None, None]  # the prediction alone: frame 3 predicted nothing
    results = {k: {"diffvas_res_bbox": b, "diffvas_raw_bbox": r} for k, b, r in zip(clip.frame_keys, preds, raw)}
    s = score_results([clip], results, "box")
    assert s["authors"]["miou"] == pytest.approx((0.5 + 0.75 + 0 + 0.64) / 4)
    assert (s["authors"]["ap25"], s["authors"]["ap50"], s["authors"]["ap75"]) == (0.75, 0.5, 0.0)
    # strict: both empty -> 1, empty prediction -> 0
    assert s["strict"]["miou"] == pytest.approx((0.5 + 0.75 + 1 + 0) / 4)
    assert s["strict"]["ap50"] == pytest.approx(0.5)
    assert box_iou([0, 0, 2, 2], [1, 1, 2, 2]) == pytest.approx(1 / 7)
    assert strict_box_iou([0, 0, 2, 2], None) == 0.0
    # the authors' files have no raw boxes: strict figures are n/a
    authors_only = {k: {"diffvas_res_bbox": b} for k, b in zip(clip.frame_keys, preds)}
    assert math.isnan(score_results([clip], authors_only, "box")["strict"]["miou"])


def test_missing_results(tmp_path):
    data = read_sailvos(hand_clips(tmp_path))
    partial = {k: v for k, v in hand_predictions().items() if k.endswith(", 1)")}
    with pytest.raises(ValueError, match=r"no results for clip \(10, 2\).*--missing skip"):
        score_results(data.clips(), partial, "mask", (800, 1280))
    s = score_results(read_sailvos(hand_clips(tmp_path)).clips(), partial, "mask", (800, 1280), missing="skip")
    assert s["clips"] == 1 and s["clips_without_results"] == 1
    del partial["(1, 1)"]
    with pytest.raises(ValueError, match=r"results for 2 of 3 frames; frame \(1, 1\) is missing"):
        score_results(read_sailvos(hand_clips(tmp_path)).clips(), partial, "mask", (800, 1280))


def test_score_cli_prints_both_protocols(tmp_path, caplog):
    ann = hand_clips(tmp_path)
    preds = write(tmp_path / "results.json", hand_predictions())
    with caplog.at_level(logging.INFO, logger="diffusion_vas"):
        code = main(["benchmark", "score", "--dataset", "sailvos", "--annotations", str(ann), "--predictions",
                     str(preds), "--summary", str(tmp_path / "summary.json")])
    assert code == 0
    assert f"authors' protocol: miou {100 * AUTHORS_MIOU:.2f}, miou_occ {100 * AUTHORS_OCC:.2f}" in caplog.text
    assert f"strict protocol:   miou {100 * STRICT_MIOU:.2f}, miou_occ {100 * STRICT_OCC:.2f}" in caplog.text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["authors"]["miou"] == pytest.approx(AUTHORS_MIOU, abs=1e-9)
    assert main(["benchmark", "score", "--dataset", "sailvos", "--annotations", str(ann), "--predictions",
                 str(tmp_path / "nope.json")]) == 1


# -- runner -----------------------------------------------------------------------------------------------------

class FakeSampler:
    """Stands in for a pipeline: decodes to all white (``value`` 1) or all black (0); records its inputs."""

    def __init__(self, value: float):
        self.value, self.calls = value, []

    def sample(self, cond_a, cond_b, options=None, callback=None, **changes):
        self.calls.append((cond_a.clone(), cond_b.clone(), options))
        return torch.full_like(cond_a, self.value)


def write_frames(root, entries, key, size):
    for entry in entries:
        for name in entry[key]:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(path)


def luminance(frames):
    return frames.float().mean(-1) + torch.linspace(0, 1, frames.shape[2])[None, None, :]


def test_runner_sailvos_writes_the_authors_format_and_resumes(tmp_path):
    entries = [sail_track(1, 0, [(100, 100, 200, 200)] * 2), sail_track(2, 10, [(100, 100, 200, 200)] * 2)]
    ann = write(tmp_path / "val.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", SAIL)
    out = tmp_path / "out" / "results.json"
    black = FakeSampler(0.0)
    depth_calls = []

    def depth(frames):
        depth_calls.append(tuple(frames.shape))
        return luminance(frames)

    data = B.open_dataset("sailvos", ann, tmp_path / "frames")
    report = B.run_benchmark("sailvos", data, out, black, depth, limit=1, depth_cache=tmp_path / "cache",
                             progress=False)
    assert (report.predicted, report.already_done) == (1, 0)
    assert depth_calls == [(2, 256, 512, 3)]  # depth on the frames resized to 256x512
    results = json.loads(out.read_text())
    assert sorted(results) == ["(0, 1)", "(1, 1)"]
    mask = rle.decode(results["(0, 1)"]["diffvas_res_rle"], "test")
    assert mask.shape == (256, 512)  # stage 1 gives nothing: the visible mask at 256x512 (OpenCV-style resize)
    expected = resize_linear(box_mask(SAIL, 100, 100, 200, 200).astype(np.uint8), (256, 512)) > 0
    assert (mask == expected).all()
    assert black.calls[0][2].fps == 8
    # resume: clip 1 is skipped, only clip 2 runs; its depth is new, clip 1's cached depth is untouched
    report = B.run_benchmark("sailvos", B.open_dataset("sailvos", ann, tmp_path / "frames"), out, black, depth,
                             depth_cache=tmp_path / "cache", progress=False)
    assert (report.predicted, report.already_done) == (1, 1) and len(black.calls) == 2
    assert sorted(json.loads(out.read_text())) == ["(0, 1)", "(1, 1)", "(10, 2)", "(11, 2)"]
    assert len(list((tmp_path / "cache" / "sailvos").glob("*.npy"))) == 2
    # the cache serves a rerun without calling the depth function
    out.unlink()
    B.run_benchmark("sailvos", B.open_dataset("sailvos", ann, tmp_path / "frames"), out, black, depth,
                    depth_cache=tmp_path / "cache", progress=False)
    assert len(depth_calls) == 2


def test_runner_tao_padding_depth_fps_and_boxes(tmp_path):
    entries = [tao_track(frames=2)]
    ann = write(tmp_path / "tao.json", entries)
    write_frames(tmp_path / "frames", entries, "file_names", TAO)
    data = B.open_dataset("tao-amodal", ann, tmp_path / "frames", write(tmp_path / "o.json", {"3": 7}))
    white, black = FakeSampler(1.0), FakeSampler(0.0)
    B.run_benchmark("tao-amodal", data, tmp_path / "white.json", white, luminance, progress=False)
    B.run_benchmark("tao-amodal", B.open_dataset("tao-amodal", ann, tmp_path / "frames",
                                                 tmp_path / "o.json"), tmp_path / "black.json", black, luminance,
                    progress=False)
    cond_a, cond_b, options = white.calls[0]
    assert options.fps == 2
    assert cond_b.shape[-2:] == (256, 512)
    # padding 180 x 320 of 1080 x 1920 -> 256 x 512: border columns 0..84 are all padding: depth 1 ("nearest")
    assert torch.allclose(cond_b[0, :, :, :, :80], torch.ones(1)) and torch.all(cond_a[0, :, :, :, :80] == -1)
    white_res = json.loads((tmp_path / "white.json").read_text())
    key = "(3, 'frame0000.jpg', '1')"
    # everything predicted: the whole padded canvas, shifted back: x from -320, y from -180
    assert white_res[key]["diffvas_raw_bbox"] == [-320, -180, 1920, 1080]
    assert white_res[key]["diffvas_res_bbox"] == [-320, -180, 1920, 1080]
    assert white_res[key]["diffvas_res_rle"]["size"] == [1080, 1920]
    black_res = json.loads((tmp_path / "black.json").read_text())
    # nothing predicted: the visible box (inclusive extents), no raw box
    assert black_res[key]["diffvas_raw_bbox"] is None
    assert black_res[key]["diffvas_res_bbox"] == [100, 200, 200, 200]
    s = score_results(read_tao_amodal(ann, track_offsets=tmp_path / "o.json").clips(), black_res, "box")
    assert s["authors"]["miou"] == pytest.approx(200 * 200 / (300 * 200))  # visible box inside the full box
    assert s["strict"]["miou"] == 0.0


def test_union_boxes():
    assert B.union_boxes([0, 0, 10, 10], [5, -5, 10, 10]) == [0, -5, 15, 15]


def test_shards_merge_to_the_one_process_result(tmp_path):
    """MOVi (SAIL-VOS schema, 256x256 frames): process 1 of 2 finishing first must not shift process 0's share."""
    entries = [sail_track(k, 10 * k, [(10 + 5 * k, 100, 60, 140)] * 2, (10, 100, 90, 140), (256, 256))
               for k in range(1, 4)]
    ann = write(tmp_path / "movi.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", (256, 256))

    def run(output, **shard):
        return B.run_benchmark("movi", B.open_dataset("movi", ann, tmp_path / "frames"), output, FakeSampler(0.0),
                               luminance, progress=False, **shard)

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    run(one)
    r1 = run(two, process_index=1, num_processes=2)
    assert not r1.merged and not two.exists() and B.shard_file(two, 1, 2).is_file()
    r0 = run(two, process_index=0, num_processes=2)
    assert (r0.predicted, r1.predicted) == (2, 1) and r0.merged
    assert json.loads(two.read_text()) == json.loads(one.read_text())
    assert not list(tmp_path.glob("*.jsonl"))


def test_cli_run_and_score_with_the_tiny_checkpoints(tmp_path, caplog):
    entries = [sail_track(1, 0, [(100, 100, 200, 200)] * 2)]
    ann = write(tmp_path / "val.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", SAIL)
    out = tmp_path / "res.json"
    with caplog.at_level(logging.INFO, logger="diffusion_vas"):
        code = main(["benchmark", "run", "--dataset", "sailvos", "--annotations", str(ann), "--data-root",
                     str(tmp_path / "frames"), "--output", str(out), "--stage1",
                     str(TINY.stage1), "--depth-model",
                     str(TINY.depth), "--steps", "1", "--device", "cpu", "--score",
                     "--no-progress", "--size", "64x128"])
    assert code == 0, caplog.text
    results = json.loads(out.read_text())
    assert sorted(results) == ["(0, 1)", "(1, 1)"]
    assert results["(0, 1)"]["diffvas_res_rle"]["size"] == [64, 128]  # --size (the authors': 256x512)
    assert "authors' protocol: miou" in caplog.text and "strict protocol:   miou" in caplog.text


def test_runner_with_a_tiny_model_built_here(tmp_path):
    """No ../shared needed: a random tiny Diffusion-VAS checkpoint written by the test, through load_pipeline."""
    from training_tiny import write_tiny_vas

    from diffusion_vas.models import SamplingOptions, load_pipeline

    pipe = load_pipeline(write_tiny_vas(tmp_path / "tiny-vas"))
    entries = [sail_track(1, 0, [(10, 100, 60, 140)] * 2, (10, 100, 90, 140), (256, 256))]
    ann = write(tmp_path / "movi.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", (256, 256))
    out = tmp_path / "movi_results.json"
    B.run_benchmark("movi", B.open_dataset("movi", ann, tmp_path / "frames"), out, pipe, luminance,
                    options=SamplingOptions(num_inference_steps=1), progress=False, size=(64, 128))
    results = json.loads(out.read_text())
    assert sorted(results) == ["(0, 1)", "(1, 1)"]
    mask = rle.decode(results["(0, 1)"]["diffvas_res_rle"], "test")
    visible = resize_linear(box_mask((256, 256), 10, 100, 60, 140).astype(np.uint8), (64, 128)) > 0
    assert mask.shape == (64, 128) and (mask | visible).sum() == mask.sum()  # stage 1 keeps the visible mask
    s = score_results(read_sailvos(ann).clips(), results, "mask")  # scored at MOVi's native 256x256
    assert 0 < s["authors"]["miou"] <= 1 and s["frames"] == 2
