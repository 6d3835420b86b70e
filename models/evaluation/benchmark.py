"""Runs stage 1 (optionally stage 2) over a real dataset and writes the authors' result JSON, sharded and resumable.

One table, `SETTINGS`, holds every per-dataset choice. How each clip is processed:

**SAIL-VOS-2D / MOVi** (mask datasets; the authors' ``eval_diffusion_vas_sailvos.py``):

1. frames and visible masks are resized to the processing size (256x512) with OpenCV-style INTER_LINEAR
   (`resize_linear`; a {0, 1} mask stays binary), as the authors' loader does;
2. depth: the depth network on the **resized** frames, raw, min-max normalised over the clip (inside stage 1);
3. `predict_amodal_masks` at the processing size (inputs already at that size, so it resizes nothing);
4. the processing-size mask is written as COCO RLE under ``"(image_id, obj_id)"`` -> ``{"diffvas_res_rle": ...}``.
   One difference: this project's stage 1 always ORs the (processing-size) visible mask into its output, the
   authors' file does not; their metric ORs the full-size visible mask anyway, so only the rim where the
   upsampled 256x512 visible mask exceeds the 800x1280 one can differ.

**TAO-Amodal** (box dataset; the authors' ``eval_diffusion_vas_tao_amodal.py``):

1. the canvas is padded by ``pad = (H // 4, W // 4)`` on each side (1.5H x 1.5W);
2. depth: the network on the **native** frames, clip min-max to 0..1, quantised to uint8 (x255, truncated),
   padded with 1 ("nearest": the outside looks like a near occluder), resized (float INTER_LINEAR) to 256x512;
3. visible masks zero-padded, resized (float INTER_LINEAR, soft edges) to 256x512; stage 1 binarises them at 0.5
   (the authors feed the soft values);
4. stage 1 at **fps 2**; its mean decoded intensity is resized (float INTER_LINEAR) to the padded size and
   thresholded at 600/765 (the authors threshold the uint8 channel sum of the resized frames at 600);
5. box of the predicted mask, shifted by ``-pad`` (it may leave the frame); the true visible box where nothing is
   predicted; **union with the true visible box** -> ``diffvas_res_bbox``. Also written: ``diffvas_res_rle``
   (prediction OR padded visible mask, padded coordinates), ``modal_res_rle`` (padded visible mask), and, for the
   strict protocol, ``diffvas_raw_bbox`` (the prediction's own box in image coordinates, null when empty).
   A frame with an empty visible mask (the authors' script crashes there) gets the raw box, or [0, 0, 0, 0].

Stage-1 depth of a clip can be cached on disk (``depth_cache``; raw network output as ``.npy``).

**Several samples** (``samples`` K > 1, the paper's Top-K rows): stage 1 draws K samples per clip (sample k with
seed + k, so sample 0 is the one-sample run). The authors' fields hold sample 0 (their metric scores it: Top-1);
every frame also gets the list of all K: ``diffvas_samples_rle`` (masks) or ``diffvas_samples_bbox`` and
``diffvas_samples_raw_bbox`` (TAO-Amodal), which `benchmark_scoring` scores as the oracle Top-K. With stage 2,
hypothesis k is completed with seed + k into ``content_dir/<clip>/sample<k>/``.

**Sharding and resuming**: with N processes (``accelerate launch``), process r takes the usable clips r, r+N, ...
(in file order) that are not yet in the output, appends each finished clip's frames to ``<output>.shard-r-of-N.jsonl`` (one JSON
object per line, so an interrupted run loses at most one clip), and process 0 merges the output and every shard
file into ``<output>`` (the authors' single JSON object) at the end, then deletes the shards. A clip whose frame
keys are all in the output or a shard is skipped. Without ``accelerate`` (or without a launcher) it is one
process.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..base.progress import phase
from ..datasets import rle
from ..datasets.clip import AmodalClip, modal_box
from ..datasets.movi import read_movi
from ..datasets.resize import resize_linear, resize_linear_stack
from ..datasets.sailvos import read_sailvos
from ..datasets.tao_amodal import read_tao_amodal
from ..stages.conditions import AMODAL_SUM_THRESHOLD
from ..stages.run import SamplingOptions, complete_content, predict_amodal_masks
from .benchmark_scoring import BOX_KEY, MASK_KEY, RAW_BOX_KEY, SAMPLE_BOX_KEY, SAMPLE_MASK_KEY, SAMPLE_RAW_BOX_KEY
from ..base.errors import PackError

log = logging.getLogger(__name__)

DepthFunction = Callable[[torch.Tensor], torch.Tensor]  # [T, H, W, 3] uint8 RGB -> [T, H, W] raw depth


@dataclass(frozen=True)
class DatasetSettings:
    """Everything that differs between datasets (one row of `SETTINGS`).

    Attributes:
        kind: ``"mask"`` (amodal masks scored) or ``"box"`` (amodal boxes scored).
        size: stage-1 processing ``(height, width)``.
        fps: the fps micro-conditioning passed to the pipeline (the time id is fps - 1).
        pad_fraction: canvas padding per side as a fraction of the frame (``H // round(1 / f)``); 0 = none.
        depth_on_native: depth from native frames (True) or from frames resized to ``size`` (False).
        depth_quantize: depth normalised over the clip and truncated to 8 bits before use (TAO script).
        score_size: size the masks are scored at (None: the annotation's native size).
        result_name: the authors' result file name.
        reader: opens the annotation file: ``reader(annotations, data_root, **options)``.
        source: where the choice comes from.
    """

    kind: str
    size: tuple[int, int]
    fps: int
    pad_fraction: float
    depth_on_native: bool
    depth_quantize: bool
    score_size: tuple[int, int] | None
    result_name: str
    reader: Callable
    source: str


SETTINGS: dict[str, DatasetSettings] = {
    "sailvos": DatasetSettings(
        kind="mask", size=(256, 512), fps=8, pad_fraction=0.0, depth_on_native=False, depth_quantize=False,
        score_size=(800, 1280), result_name="diffusion_vas_sailvos_eval_results_seed23.json", reader=read_sailvos,
        source="authors: eval_diffusion_vas_sailvos.py / metric_diffusion_vas_sailvos.py"),
    "tao-amodal": DatasetSettings(
        kind="box", size=(256, 512), fps=2, pad_fraction=0.25, depth_on_native=True, depth_quantize=True,
        score_size=None, result_name="diffusion_vas_tao_amodal_eval_results_seed23.json", reader=read_tao_amodal,
        source="authors: eval_diffusion_vas_tao_amodal.py / metric_diffusion_vas_tao_amodal.py"),
    "movi": DatasetSettings(
        kind="mask", size=(256, 512), fps=8, pad_fraction=0.0, depth_on_native=False, depth_quantize=False,
        score_size=None, result_name="diffusion_vas_movi_eval_results_seed23.json", reader=read_movi,
        source="this project (the authors publish no MOVi scripts): SAIL-VOS settings, scored at native size"),
}
DATASETS = tuple(SETTINGS)


def settings_for(dataset: str) -> DatasetSettings:
    if dataset not in SETTINGS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    return SETTINGS[dataset]


def open_dataset(dataset: str, annotations, data_root=None, track_offsets=None):
    """The dataset's reader on ``annotations`` (``track_offsets`` only for TAO-Amodal)."""
    reader = settings_for(dataset).reader
    if dataset == "tao-amodal":
        return reader(annotations, data_root, track_offsets)
    if track_offsets is not None:
        raise ValueError("--track-offsets applies to tao-amodal only.")
    return reader(annotations, data_root)


@dataclass
class RunReport:
    """What `run_benchmark` did in this process: clips predicted, skipped as done, and the merged output."""

    predicted: int
    already_done: int
    output: Path
    merged: bool


def run_benchmark(
    dataset: str,
    data,
    output,
    amodal_pipe,
    depth: DepthFunction,
    options: SamplingOptions | None = None,
    content_pipe=None,
    content_dir=None,
    depth_cache=None,
    limit: int | None = None,
    process_index: int = 0,
    num_processes: int = 1,
    barrier: Callable[[], None] | None = None,
    progress: bool = True,
    size: tuple[int, int] | None = None,
    samples: int = 1,
) -> RunReport:
    """Predicts every clip of ``data`` not yet in ``output`` and writes the authors' result JSON.

    Args:
        dataset: a key of `SETTINGS`.
        data: an opened annotation file (`open_dataset`).
        output: the result JSON (merged at the end by process 0).
        amodal_pipe: the stage-1 pipeline. depth: raw depth function (`DepthFunction`).
        options: sampling settings (seed 23, 25 steps, guidance 1.5 ...); ``fps`` is set from `SETTINGS`.
        content_pipe: when given, stage 2 runs too and its frames go to ``content_dir/<clip>/<frame>.png``.
        depth_cache: folder for cached raw depth (``.npy`` per clip and input size).
        limit: only the first ``limit`` usable clips (a quick check).
        process_index, num_processes: this process's shard (from accelerate).
        barrier: called before merging (accelerate's ``wait_for_everyone``).
        size: processing ``(height, width)`` instead of the table's (not the authors' setting; quick checks or
            the 128x256 training size). Results are still scored at the dataset's scoring size.
        samples: K stage-1 samples per clip (module docstring, *Several samples*). A clip counts as done only
            when its frames hold K samples (K = 1: any result), so a run with another K redoes it.
    """
    settings = settings_for(dataset)
    if size is not None:
        settings = replace(settings, size=(int(size[0]), int(size[1])))
    if int(samples) < 1:
        raise ValueError(f"samples must be at least 1, got {samples}.")
    options = replace(options or SamplingOptions(), fps=settings.fps, samples=int(samples))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = read_done_keys(output, int(samples))
    clips = []
    for clip in data.clips():
        if limit is not None and len(clips) >= limit:
            break
        clips.append(clip)
    todo = [c for c in clips if not all(k in done for k in c.frame_keys)]
    # the share is fixed by file order, not by what is done, so processes that start at different times agree
    mine = [c for c in clips[process_index::num_processes] if not all(k in done for k in c.frame_keys)]
    shard = shard_file(output, process_index, num_processes)
    log.info("%s: %d clips, %d already in %s; process %d of %d takes %d.", dataset, len(clips),
             len(clips) - len(todo), output, process_index, num_processes, len(mine))
    with phase(f"{dataset} [{process_index + 1}/{num_processes}]", len(mine), "clip", enabled=progress) as bar:
        for clip in mine:
            frames = predict_clip(clip, settings, amodal_pipe, depth, options, depth_cache,
                                  content_pipe, Path(content_dir) if content_dir else None)
            with open(shard, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(frames) + "\n")
            bar.update(1)
    if barrier is not None:
        barrier()
    merged = False
    if process_index == 0:
        merge_shards(output)
        merged = True
    return RunReport(predicted=len(mine), already_done=len(clips) - len(todo), output=output, merged=merged)


def predict_clip(clip: AmodalClip, settings: DatasetSettings, pipe, depth: DepthFunction,
                 options: SamplingOptions, depth_cache=None, content_pipe=None, content_dir: Path | None = None
                 ) -> dict:
    """One clip's results ``{frame key: {field: value}}`` in the authors' format (module docstring)."""
    if settings.kind == "mask":
        return _predict_masks(clip, settings, pipe, depth, options, depth_cache, content_pipe, content_dir)
    return _predict_boxes(clip, settings, pipe, depth, options, depth_cache, content_pipe, content_dir)


def _predict_masks(clip, settings, pipe, depth, options, depth_cache, content_pipe, content_dir) -> dict:
    size = settings.size
    frames = clip.read_frames(size)
    modal = torch.from_numpy(resize_linear_stack(clip.modal.numpy().astype(np.uint8), size) > 0)
    raw = _depth(clip, frames, depth, depth_cache, "processing")
    result = predict_amodal_masks(pipe, modal, raw, size=size, options=options)
    amodal = result.masks_processed  # [K, T, h, w]: one object, K samples
    if content_pipe is not None:
        _complete(clip, content_pipe, frames, modal, amodal, size, content_dir)
    out = {}
    for t, key in enumerate(clip.frame_keys):
        encoded = [rle.encode(sample[t].numpy()) for sample in amodal]
        out[key] = {MASK_KEY: encoded[0], **({SAMPLE_MASK_KEY: encoded} if len(encoded) > 1 else {})}
    return out


def _predict_boxes(clip, settings, pipe, depth, options, depth_cache, content_pipe, content_dir) -> dict:
    size = settings.size
    height, width = clip.size
    step = round(1 / settings.pad_fraction) if settings.pad_fraction else 0
    pad_h, pad_w = (height // step, width // step) if step else (0, 0)
    padded = (height + 2 * pad_h, width + 2 * pad_w)
    frames = clip.read_frames()
    if tuple(frames.shape[1:3]) != (height, width):
        raise ValueError(f"{clip.where()}: frames are {tuple(frames.shape[1:3])} but the annotation says "
                         f"{height} x {width}.")
    raw = _depth(clip, frames, depth, depth_cache, "native").float()
    span = raw.max() - raw.min()
    norm = (raw - raw.min()) / span if span > 0 else torch.zeros_like(raw)
    if settings.depth_quantize:
        norm = torch.floor(norm * 255) / 255
    pads = ((0, 0), (pad_h, pad_h), (pad_w, pad_w))
    depth_in = torch.from_numpy(resize_linear_stack(np.pad(norm.numpy(), pads, constant_values=1.0), size))
    modal_np = clip.modal.numpy()
    modal_padded = np.pad(modal_np, pads, constant_values=False)
    modal_in = torch.from_numpy(resize_linear_stack(modal_padded.astype(np.float32), size))
    result = predict_amodal_masks(pipe, modal_in, depth_in, size=size, options=options)
    probability = result.probability.numpy()  # [K, T, h, w]: one object, K samples
    cut = AMODAL_SUM_THRESHOLD / (3 * 255)
    out = {}
    for k, key in enumerate(clip.frame_keys):
        visible_box = modal_box(modal_np[k])
        boxes, raw_boxes = [], []
        for sample in probability:
            pred = resize_linear(sample[k], padded) > cut
            raw_box = modal_box(pred)
            if raw_box is not None:
                raw_box = [raw_box[0] - pad_w, raw_box[1] - pad_h, raw_box[2], raw_box[3]]
            box = raw_box if raw_box is not None else visible_box
            if box is None:
                box = [0, 0, 0, 0]
            elif visible_box is not None:
                box = union_boxes(box, visible_box)
            if not boxes:  # sample 0 fills the authors' fields
                out[key] = {BOX_KEY: box, MASK_KEY: rle.encode(pred | modal_padded[k]),
                            "modal_res_rle": rle.encode(modal_padded[k]), RAW_BOX_KEY: raw_box}
            boxes.append(box), raw_boxes.append(raw_box)
        if len(boxes) > 1:
            out[key].update({SAMPLE_BOX_KEY: boxes, SAMPLE_RAW_BOX_KEY: raw_boxes})
    if content_pipe is not None:
        rgb_in = torch.from_numpy(resize_linear_stack(np.pad(frames.numpy(), pads + ((0, 0),)), size))
        _complete(clip, content_pipe, rgb_in, modal_in > 0.5, result.masks_processed, size, content_dir)
    return out


def union_boxes(a: Sequence, b: Sequence) -> list:
    """Smallest ``[x, y, w, h]`` containing both boxes (the authors' ``union_bboxes``)."""
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return [x0, y0, x1 - x0, y1 - y0]


def _depth(clip: AmodalClip, frames: torch.Tensor, depth: DepthFunction, cache, where: str) -> torch.Tensor:
    """Raw depth ``[T, H, W]`` of ``frames``, from the cache folder when there."""
    file = None
    if cache is not None:
        t, h, w = frames.shape[:3]
        file = Path(cache) / clip.dataset / f"{_safe(clip.name)}_{where}_{t}x{h}x{w}.npy"
        if file.is_file():
            cached = torch.from_numpy(np.load(file))
            if tuple(cached.shape) == (t, h, w):
                return cached
            log.warning("%s has shape %s, expected %s; recomputing.", file, tuple(cached.shape), (t, h, w))
    raw = depth(frames)
    if tuple(raw.shape) != tuple(frames.shape[:3]):
        raise PackError(f"The depth function returned {tuple(raw.shape)} for frames {tuple(frames.shape)}; "
                           f"it must return [T, H, W] at the frames' size.")
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, raw.float().numpy())
        os.replace(tmp, file)
    return raw


def _complete(clip, content_pipe, rgb, modal, amodal, size, content_dir: Path | None) -> None:
    """Stage 2 on ``amodal`` ``[K, T, h, w]`` (K stage-1 samples of one object: hypothesis k completed with
    seed + k); frames to ``content_dir/<clip>/`` (K = 1) or ``content_dir/<clip>/sample<k>/``."""
    from ..io.media import write_png_frames

    result = complete_content(content_pipe, rgb, modal, amodal, size=size)
    if content_dir is not None:
        folder = content_dir / _safe(clip.name)
        if len(result.rgb_processed) == 1:
            write_png_frames(folder, result.rgb_processed[0])
        else:
            for k, frames in enumerate(result.rgb_processed):
                write_png_frames(folder / f"sample{k}", frames)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "clip"


# -- output files -----------------------------------------------------------------------------------------------

def shard_file(output: Path, index: int, count: int) -> Path:
    return output.with_name(f"{output.name}.shard-{index}-of-{count}.jsonl")


def _shards(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f"{glob_escape(output.name)}.shard-*-of-*.jsonl"))


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def read_done_keys(output: Path, samples: int = 1) -> set[str]:
    """Frame keys already in the output or in any shard file (resume); with ``samples`` K > 1 only those whose
    results hold K samples."""
    results = _read_all(output)
    if samples == 1:
        return set(results)
    return {key for key, item in results.items() if isinstance(item, dict)
            and len(item.get(SAMPLE_MASK_KEY, item.get(SAMPLE_BOX_KEY, ()))) == samples}


def _read_all(output: Path) -> dict:
    results = {}
    if output.is_file():
        try:
            data = json.loads(output.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"Existing output {output} is not valid JSON ({error}); move it away to start "
                             f"afresh.") from error
        if not isinstance(data, dict):
            raise ValueError(f"Existing output {output} is not a result JSON object.")
        results.update(data)
    for shard in _shards(output):
        with open(shard, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    results.update(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("%s, line %d: incomplete record (interrupted run?); that clip will be redone.",
                                shard, number)
    return results


def merge_shards(output: Path) -> dict:
    """Writes the output and every shard's records as one authors'-format JSON, then deletes the shards."""
    results = _read_all(output)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(results.items())), indent=1), encoding="utf-8")
    os.replace(tmp, output)
    for shard in _shards(output):
        shard.unlink()
    return results
