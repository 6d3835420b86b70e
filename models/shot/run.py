"""A real shot, start to finish: a video (or a folder of frames) and a mask folder in, result files out, streamed.

Nothing of the shot is held at input size beyond a few frames: the frames are decoded, and the masks read, part
by part, once per pass; what the models need is kept at the processing size (`stages.amodal_stage`,
`stages.content_stage`), and every result is written while the next part is computed (`outputs`). The passes:

1. **masks**: the mask folder is scanned once (format, objects; `io.mask_files`), and for ``region="object"``
   read once more for each object's extent;
2. **depth**: the frames are decoded once; Depth Anything V2 runs on them as they come (`depth.resolution`), and
   the footage stage 2 needs is resized from the same decode; then the conditions are built at the processing size;
3. **stage 1**: sampled object by object (``object_batch_size`` at a time), each result stored as soon as it is
   sampled;
4. **writing stage 1**: the visible masks are read again and the full masks written at input size part by part;
5. **stage 2** and 6. **writing stage 2**: the same for the colours, with a second decode of the frames.

Everything kept between passes lives in ``<out>/.diffusion-vas/`` (`workdir`): a run killed at any moment and
started again with ``resume=True`` continues where it stopped (finished stages of finished objects are not
sampled again, unfinished outputs are completed) and gives the same files, byte for byte.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .outputs import GifWriter, Mp4Writer, PngWriter, png_workers, remove_partial_files
from .workdir import WorkFolder, fingerprint_files, fingerprint_tree
from ..depth.estimator import INPUT_SIZE, load_depth_model
from ..depth.resolution import DEFAULT_DEPTH_FROM, DEPTH_FROM, DepthFromFrames
from ..engine.loading import load_pipeline
from ..engine.options import DEFAULT_SIZE, SamplingOptions
from ..io.catalog import (
    AMODAL_SEGMENTATION, CONTENT_COMPLETION, DEFAULT_DEPTH_MODEL, DEPTH, DIFFUSION_VAS, check_obtainable,
    resolve_checkpoint, resolve_depth_model,
)
from ..host import resolve_device, resolve_dtype
from ..io.frame_names import check_output_folder
from ..io.frame_source import DepthFrames, open_frames, prefetch
from ..io.mask_files import MASK_FORMATS, read_mask_folder
from ..io.media import output_frame_rate
from ..stages import conditions as C
from ..stages import amodal_stage, content_stage, hypotheses
from ..base.chunking import chunks
from ..base.memory import peak_rss
from ..stages.content_blend import DEFAULT_KEEP_VISIBLE_PIXELS
from ..stages.region import DEFAULT_CONTEXT, DEFAULT_REGION, REGIONS, Box
from ..stages.run import sample_amodal_stage, sample_content_stage
from ..base.progress import phase
from ..base.threads import torch_threads
from ..stages.upscale import DEFAULT_MASK_UPSCALE, MASK_UPSCALES

logger = logging.getLogger("diffusion_vas")

WRITE_CHOICES = ("masks", "layer", "rgb", "mp4", "overlay", "gif")
DEFAULT_WRITE = ("masks", "layer", "mp4")  # what a compositor wants: mask and RGBA layer sequences, MP4 previews
FOLDER_FPS = 8  # written videos of a folder of frames (no rate of its own): the rate the authors sample at
OVERLAY_TINT = (255, 64, 160)
PREVIEW_GREY = 128  # the layer's MP4/GIF preview shows the object over mid-grey (videos have no alpha)


@dataclass
class ShotSettings:
    """Everything a shot run needs; the fields marked in `RESULT_FIELDS` decide the results (``--resume``
    compares them)."""

    frames: Path
    masks: Path
    out: Path
    start: int = 0
    count: int = 0
    every: int = 1
    mask_format: str = MASK_FORMATS[0]
    object_ids: list[int] | None = None
    depth: Path | None = None  # a folder of depth frames instead of Depth Anything V2 (brighter = nearer)
    depth_model: str = DEFAULT_DEPTH_MODEL
    depth_from: str = DEFAULT_DEPTH_FROM
    depth_input_size: int = INPUT_SIZE  # Depth Anything's network input (shortest side, a multiple of 14)
    depth_batch_size: int = 4
    stage1: str = AMODAL_SEGMENTATION
    stage2: str = CONTENT_COMPLETION
    size: tuple[int, int] = DEFAULT_SIZE
    amodal: SamplingOptions = field(default_factory=lambda: SamplingOptions.for_stage("amodal"))
    content: SamplingOptions = field(default_factory=lambda: SamplingOptions.for_stage("content"))
    threshold: int = C.AMODAL_SUM_THRESHOLD
    mask_upscale: str = DEFAULT_MASK_UPSCALE
    keep_visible_pixels: bool = DEFAULT_KEEP_VISIBLE_PIXELS
    region: str = DEFAULT_REGION
    masks_only: bool = False
    write: tuple[str, ...] = DEFAULT_WRITE
    fps: float | None = None
    device: str = "auto"
    dtype: str = "auto"
    overwrite: bool = False
    resume: bool = False

    def check(self) -> None:
        """Refuses settings that cannot run, naming the setting."""
        unknown = sorted(set(self.write) - set(WRITE_CHOICES))
        if unknown or not self.write:
            raise ValueError(f"--write {','.join(self.write)}: choose from {','.join(WRITE_CHOICES)} "
                             "(comma-separated).")
        if not {"masks", "layer", "rgb", "overlay"} & set(self.write):
            raise ValueError("--write: name at least one of masks, layer, rgb, overlay (mp4 and gif are previews of "
                             "those).")
        if self.masks_only and not {"masks", "overlay"} & set(self.write):
            raise ValueError("--masks-only writes masks or overlay; add one of them to --write.")
        for value, choices, name in ((self.region, REGIONS, "--region"), (self.mask_upscale, MASK_UPSCALES,
                                     "--mask-upscale"), (self.depth_from, DEPTH_FROM, "--depth-from"),
                                     (self.mask_format, MASK_FORMATS, "--mask-format")):
            if value not in choices:
                raise ValueError(f"{name} {value!r}: use one of {', '.join(choices)}.")
        if self.amodal.samples != self.content.samples:
            raise ValueError("stage 1 and stage 2 need the same number of samples (each stage-1 sample is completed "
                             "once).")
        self.amodal.validate()
        self.content.validate()
        if self.depth_input_size < 14 or self.depth_input_size % 14:
            raise ValueError(f"--depth-input-size {self.depth_input_size}: use a positive multiple of 14 (518 as "
                             "trained).")
        if self.depth_batch_size < 1:
            raise ValueError(f"--depth-batch-size {self.depth_batch_size}: use 1 or more.")
        if not 0 <= self.threshold <= 765:
            raise ValueError(f"--threshold {self.threshold}: use 0..765 (decoded R+G+B).")

    def record(self) -> dict:
        """The settings that decide the results, JSON-able (for ``--resume``)."""
        values = asdict(self)
        for name in ("out", "overwrite", "resume", "device"):
            values.pop(name)
        values["write"] = sorted(self.write)
        return json_able(values)


def json_able(value):
    if isinstance(value, dict):
        return {str(k): json_able(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_able(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class ShotResult:
    """What a run did: the object ids, frames per object, output folder, seconds and the process's peak RSS
    (bytes; None where the platform cannot tell, see `base.memory.peak_rss`)."""

    out: Path
    ids: list[int]
    frames: int
    seconds: float
    peak_rss: int | None
    resumed: bool


def run_shot(settings: ShotSettings) -> ShotResult:
    """Runs both stages (or stage 1, ``masks_only``) over a shot and writes the results into ``settings.out``.

    Raises ValueError / FileNotFoundError / RuntimeError naming the input or setting and the fix."""
    began = time.perf_counter()
    settings.check()
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    _check_models(settings)
    shot = _Inputs(settings)
    logger.info("%d frames of %dx%d (HxW), objects %s, processing at %dx%d on %s (%s)", shot.count,
                shot.size[0], shot.size[1], shot.ids, settings.size[0], settings.size[1], device, dtype)

    work = WorkFolder(settings.out)
    if not settings.resume:
        check_output_folder(settings.out, settings.overwrite)
    resumed = work.start({"settings": settings.record(), "inputs": shot.fingerprint(settings),
                          "device": device.type, "precision": str(dtype)}, settings.resume)
    if resumed and work.is_complete:
        logger.info("--resume: %s is complete already; nothing to do.", settings.out)
        return ShotResult(settings.out, shot.ids, shot.count, time.perf_counter() - began, peak_rss(), True)
    removed = remove_partial_files(settings.out)
    if removed:
        logger.info("--resume: removed %d partly written file(s) of the stopped run", removed)

    runner = _Runner(settings, shot, work, device, dtype)
    runner.run()
    work.complete()
    seconds = time.perf_counter() - began
    peak = peak_rss()
    memory = ("peak memory unknown on this platform (install psutil to see it)" if peak is None
              else f"peak memory {peak / 2**30:.2f} GiB")
    logger.info("results written to %s (%d frames x %d object(s)) in %.1f s; %s", settings.out, shot.count,
                len(shot.ids), seconds, memory)
    return ShotResult(settings.out, shot.ids, shot.count, seconds, peak, resumed)


def _check_models(settings: ShotSettings) -> None:
    """Every model the run needs is on disk or downloadable, checked before any heavy work."""
    needed = [(DIFFUSION_VAS, settings.stage1)] + ([] if settings.masks_only else [(DIFFUSION_VAS, settings.stage2)])
    if settings.depth is None:
        needed.append((DEPTH, settings.depth_model))
    for kind, name in needed:
        logger.info("model %s", check_obtainable(kind, name))


class _Inputs:
    """The shot's frames, masks and depth as sequences (nothing read but headers and the mask scan)."""

    def __init__(self, settings: ShotSettings):
        s = settings
        self.frames = open_frames(s.frames, s.start, s.count, s.every)
        self.count, self.size, self.names = self.frames.count, self.frames.size, self.frames.names
        try:
            with phase("masks", None, "file"):
                self.masks = read_mask_folder(s.masks, s.mask_format, s.start, s.count, s.every)
        except ValueError as err:
            raise ValueError(f"--masks: {err}") from err
        self.ids = list(s.object_ids or self.masks.ids)
        if not self.ids:
            raise ValueError(f"--masks {s.masks}: every mask is empty (read as {self.masks.format}: "
                             f"{self.masks.reason}); the object must be visible in some frame, or try --mask-format.")
        if self.masks.count != self.count:
            raise ValueError(f"--masks {s.masks} gives {self.masks.count} masks but --frames {s.frames} gives "
                             f"{self.count} frames (after --start/--count/--every, which apply to both): give one "
                             "mask per frame, named so that they sort in frame order.")
        self._check_mask_size(s)
        try:
            self.modal = [self.masks.sequence(i, self.size, f"--masks object {i}") for i in self.ids]
        except ValueError as err:
            raise ValueError(f"--object-ids: {err}") from err
        self.depth = None
        if s.depth is not None:
            depth = open_frames(s.depth, s.start, s.count, s.every)
            if depth.count != self.count or depth.size != self.size:
                raise ValueError(f"--depth gives {(depth.count, *depth.size)} frames; it needs "
                                 f"{(self.count, *self.size)} (one depth image per frame, at the frame size).")
            self.depth = DepthFrames(depth)
        rate = getattr(self.frames, "rate", None)
        self.fps = s.fps or output_frame_rate(rate, s.every, FOLDER_FPS)

    def _check_mask_size(self, s: ShotSettings) -> None:
        (height, width), (mask_h, mask_w) = self.size, self.masks.size
        if (mask_h, mask_w) == (height, width):
            return
        if abs(mask_w / mask_h - width / height) <= 1 / min(mask_h, height):
            logger.warning("--masks are %dx%d (WxH) but the frames are %dx%d: resizing the masks to the frame size "
                           "(nearest neighbour).", mask_w, mask_h, width, height)
            return
        raise ValueError(f"--masks {s.masks} are {mask_w}x{mask_h} (WxH) but --frames {s.frames} are {width}x{height}, "
                         "a different aspect ratio: export the masks at the frame size (or crop/resize the frames to "
                         "the masks' size).")

    def fingerprint(self, s: ShotSettings) -> dict:
        """The inputs' identity for ``--resume``: file names, sizes and modification times."""
        frames = [Path(s.frames)] if Path(s.frames).is_file() else list(self.frames.files)
        out = {"frames": fingerprint_files(frames), "masks": fingerprint_files(self.masks.files),
               "frame_count": self.count, "ids": self.ids,
               "stage1": fingerprint_tree(resolve_checkpoint(s.stage1))}
        if not s.masks_only:
            out["stage2"] = fingerprint_tree(resolve_checkpoint(s.stage2))
        if s.depth is not None:
            out["depth"] = fingerprint_files(list(self.depth.frames.files))
        else:
            out["depth_model"] = fingerprint_tree(resolve_depth_model(s.depth_model))
        return out


class _Runner:
    """The passes of `run_shot` over one shot (see the module docstring)."""

    def __init__(self, settings: ShotSettings, shot: _Inputs, work: WorkFolder, device, dtype):
        self.s, self.shot, self.work, self.device, self.dtype = settings, shot, work, device, dtype
        self.k = settings.amodal.samples
        self.parts = chunks(shot.count, frame_pixels=shot.size[0] * shot.size[1])
        batch = settings.amodal.object_batch_size
        self.groups = [list(range(i, min(i + batch, len(shot.ids)))) for i in range(0, len(shot.ids), batch)]
        self.shareable: list[torch.nn.Module] = []  # stage 1's VAE and image encoder, for stage 2 to reuse

    def run(self) -> None:
        conditions, footage = self._conditions()
        output1 = self._amodal_stage(conditions)
        amodal_small = self._write_amodal_stage(output1, need_small=not self.s.masks_only)
        if self.s.masks_only:
            return
        conditions2 = content_stage.ContentStageConditions(conditions.boxes, conditions.modal, footage[0], footage[1],
                                                           amodal_small)
        output2 = self._content_stage(conditions2)
        self._write_content_stage(output1, conditions2, output2)

    # -- pass 1 and 2: conditions --------------------------------------------------------------------------------

    def _conditions(self):
        s, shot, work = self.s, self.shot, self.work
        need_footage = not s.masks_only
        if work.has("stage1_conditions") and (not need_footage or work.has("stage2_footage")):
            tensors, meta = work.load("stage1_conditions")
            conditions = amodal_stage.AmodalStageConditions([Box(*b) for b in meta["boxes"]], tensors["modal"],
                                                            tensors["depth"], meta["depth_rows"])
            footage = None
            if need_footage:
                tensors, meta = work.load("stage2_footage")
                footage = (tensors["footage"], meta["rows"])
            logger.info("--resume: conditions of the stopped run reused")
            return conditions, footage

        boxes = amodal_stage.object_boxes(shot.modal, s.size, s.region, DEFAULT_CONTEXT)
        footage_store = content_stage.FootageStore(shot.count, boxes, s.size) if need_footage else None
        depth_raw, network = shot.depth, None
        if depth_raw is None or footage_store is not None:
            if depth_raw is None:
                estimator = load_depth_model(resolve_depth_model(s.depth_model), self.device, self.dtype)
                spill = work.spill_folder() if s.depth_from == "input" else None
                network = DepthFromFrames(estimator, shot.count, shot.size, s.depth_from, s.size,
                                          s.depth_batch_size, s.depth_input_size, spill)
            label = "depth" if network is not None else "decode"
            with phase(label, shot.count, "frame") as bar:
                for part in prefetch(shot.frames.read(chunks(shot.count))):
                    if network is not None:
                        network.feed(part)
                    if footage_store is not None:
                        footage_store.feed(part)
                    bar.update(part.shape[0])
            if network is not None:
                depth_raw = network.finish()
                del estimator
        with phase("conditions", shot.count * 2, "frame"):
            depth = amodal_stage.NormalizedDepth(depth_raw, "depth")
            depth_conds, rows = amodal_stage.depth_store(depth, boxes, s.size, self.device)
            modal = amodal_stage.modal_store(shot.modal, boxes, s.size)
        conditions = amodal_stage.AmodalStageConditions(boxes, modal, depth_conds, rows)
        work.save("stage1_conditions", {"modal": modal, "depth": depth_conds},
                  {"boxes": [[b.top, b.left, b.height, b.width] for b in boxes], "depth_rows": rows})
        footage = None
        if footage_store is not None:
            footage = footage_store.result()
            work.save("stage2_footage", {"footage": footage[0]}, {"rows": footage[1]})
        if network is not None:
            network.close()
        return conditions, footage

    # -- pass 3 and 5: the models ----------------------------------------------------------------------------------

    def _amodal_stage(self, conditions: amodal_stage.AmodalStageConditions) -> amodal_stage.AmodalStageOutput:
        s, work = self.s, self.work
        todo = [g for g in self.groups if not work.has(self._store_name(1, g))]
        if todo:
            pipe = load_pipeline(resolve_checkpoint(s.stage1), self.device, self.dtype)
            with phase("stage 1", s.amodal.num_inference_steps * len(todo), "step") as bar:
                for group in todo:
                    out = sample_amodal_stage(pipe, conditions, s.amodal, bar.engine_callback(), s.threshold,
                                              s.mask_upscale, objects=group)
                    work.save(self._store_name(1, group), {"soft": out.soft, "processed": out.processed})
            if not s.masks_only:  # kept (not the UNet) for stage 2, which reuses them where its files are the same
                self.shareable = [pipe.vae, pipe.image_encoder]
            del pipe
            gc.collect()
        soft, processed = [], []
        for group in self.groups:
            tensors, _ = work.load(self._store_name(1, group))
            soft.append(tensors["soft"])
            processed.append(tensors["processed"])
        return amodal_stage.AmodalStageOutput(torch.cat(soft), torch.cat(processed), conditions.boxes, self.k,
                                              s.threshold, s.mask_upscale)

    def _content_stage(self, conditions: content_stage.ContentStageConditions) -> content_stage.ContentStageOutput:
        s, work = self.s, self.work
        todo = [g for g in self.groups if not work.has(self._store_name(2, g))]
        if todo:
            pipe = load_pipeline(resolve_checkpoint(s.stage2), self.device, self.dtype, share=self.shareable)
            self.shareable = []
            with phase("stage 2", s.content.num_inference_steps * len(todo), "step") as bar:
                for group in todo:
                    out = sample_content_stage(pipe, conditions, s.content, bar.engine_callback(), objects=group)
                    work.save(self._store_name(2, group), {"processed": out.processed})
            del pipe
            gc.collect()
        processed = [work.load(self._store_name(2, g))[0]["processed"] for g in self.groups]
        samples = hypotheses.completion_samples(conditions.hypotheses, s.content.samples)
        return content_stage.ContentStageOutput(torch.cat(processed), samples)

    def _store_name(self, stage: int, group: list[int]) -> str:
        return f"stage{stage}/objects_" + "_".join(str(self.shot.ids[n]) for n in group)

    # -- pass 4 and 6: writing ------------------------------------------------------------------------------------

    def _write_amodal_stage(self, output: amodal_stage.AmodalStageOutput, need_small: bool) -> torch.Tensor | None:
        """Writes every object's full masks at input size (and, for stage 2, keeps them at the processing size)."""
        s, shot, work = self.s, self.shot, self.work
        have_small = work.has("stage2_amodal")
        sinks = [] if not _writes_masks(s) else [
            _ObjectFiles(self, n, stage=1) for n in range(len(shot.ids)) if not work.done(f"stage1_obj{shot.ids[n]}")]
        if not sinks and (have_small or not need_small):
            return work.load("stage2_amodal")[0]["amodal"] if need_small else None
        small = None
        if need_small and not have_small:
            small = torch.empty(output.soft.shape[0], shot.count, *s.size, dtype=torch.bool)
        frames = None
        if any(sink.needs_frames for sink in sinks):
            frames = prefetch(shot.frames.read(self.parts))
        with phase("writing stage 1", shot.count, "frame") as bar, torch_threads(_writing_threads()):
            for part, masks, _ in output.finish(shot.modal, self.parts, self.device, probability=False,
                                                keep=not s.masks_only):
                rgb = next(frames) if frames is not None else None
                if small is not None:
                    for row in range(masks.shape[0]):
                        small[row, part] = C.downsample_masks_nearest(output.boxes[row // self.k].crop(masks[row]),
                                                                      s.size)
                for sink in sinks:
                    sink.stage1_part(part, masks, rgb)
                bar.update(part.stop - part.start)
            for sink in sinks:
                sink.close()
                work.mark(f"stage1_obj{shot.ids[sink.n]}")
        if small is not None:
            work.save("stage2_amodal", {"amodal": small})
            return small
        return work.load("stage2_amodal")[0]["amodal"] if need_small else None

    def _write_content_stage(self, output1: amodal_stage.AmodalStageOutput,
                             conditions: content_stage.ContentStageConditions,
                             output2: content_stage.ContentStageOutput) -> None:
        s, shot, work = self.s, self.shot, self.work
        sinks = [_ObjectFiles(self, n, stage=2) for n in range(len(shot.ids))
                 if not work.done(f"stage2_obj{shot.ids[n]}")]
        if not sinks:
            return
        amodal = [output1.mask_sequence(row, shot.modal[row // self.k], self.device)
                  for row in range(output1.soft.shape[0])]
        frames = _Tee(shot.frames)
        rows, t = output2.processed.shape[0], self.parts[0].stop
        # the results are composed straight into the RGB of the RGBA arrays the files are written from (uint8): a
        # new one per part, since the PNG and MP4 writers hold a part's arrays while the next is composed
        alpha = torch.empty(rows, t, *shot.size, dtype=torch.bool)
        layers = {}

        def into(part: slice):
            layers[part.start] = layer = torch.empty(rows, part.stop - part.start, *shot.size, 4, dtype=torch.uint8)
            return layer[..., :3], alpha[:, :part.stop - part.start]

        with phase("writing stage 2", shot.count, "frame") as bar, torch_threads(_writing_threads()):
            for part, _, shape in output2.finish(conditions, frames, shot.modal, amodal, self.parts,
                                                 s.keep_visible_pixels, self.device, into):
                layer = layers.pop(part.start)
                torch.mul(shape.view(torch.uint8), 255, out=layer[..., 3])
                for sink in sinks:
                    sink.stage2_part(part, layer, shape, frames.last)
                bar.update(part.stop - part.start)
            for sink in sinks:
                sink.close()
                work.mark(f"stage2_obj{shot.ids[sink.n]}")


def _writing_threads() -> int:
    """Torch's threads while the files are written: the cores the PNG writer's threads leave (at least one)."""
    return max(1, torch.get_num_threads() - png_workers())


def _writes_masks(s: ShotSettings) -> bool:
    return "masks" in s.write or (s.masks_only and "overlay" in s.write)


class _Tee:
    """A `FrameSequence` that remembers the last part it handed out (the writers' overlay needs the frames that
    stage 2's finishing pass reads anyway), decoded ahead on a thread."""

    def __init__(self, frames):
        self.frames, self.count, self.size, self.last = frames, frames.count, frames.size, None

    def read(self, parts):
        for part in prefetch(self.frames.read(parts)):
            self.last = part
            yield part


class _ObjectFiles:
    """The files of one object (all its samples) for one stage, written part by part."""

    def __init__(self, runner: _Runner, n: int, stage: int):
        s = runner.s
        self.runner, self.n, self.stage, self.k = runner, n, stage, runner.k
        self.names = runner.shot.names
        self.resume = s.resume
        self.folder = s.out / f"obj{runner.shot.ids[n]}"
        self.write = set(s.write)
        self.fps = runner.shot.fps
        self.png = PngWriter()
        self.videos: dict[Path, object] = {}
        overlay_here = "overlay" in self.write and (stage == 2 or s.masks_only)
        self.sequences = []  # (kind, folder) per sample
        for k in range(self.k):
            base = self.folder / f"sample{k}" if self.k > 1 else self.folder
            if stage == 1:
                if "masks" in self.write:
                    self.sequences.append(("amodal_masks", base, k))
            else:
                if "layer" in self.write:
                    self.sequences.append(("layer", base, k))
                if "rgb" in self.write:
                    self.sequences.append(("amodal_rgb", base, k))
            if overlay_here:
                self.sequences.append(("overlay", base, k))
        if stage == 1 and self.k > 1 and "masks" in self.write:
            self.sequences += [("consensus_masks", self.folder, None), ("agreement", self.folder, None)]
        self.needs_frames = any(kind == "overlay" for kind, _, _ in self.sequences)
        # MP4/GIF previews: one of the object per sample (its layer, or its masks when no layer is written) and
        # one of the overlay; the other sequences are for compositing and have none
        main = "layer" if "layer" in self.write and not s.masks_only else "amodal_masks"
        self.previewed = {main, "overlay"}
        for kind, base, _ in self.sequences:
            (base / kind).mkdir(parents=True, exist_ok=True)

    def _emit(self, kind: str, base: Path, index: int, frame: np.ndarray, preview: np.ndarray | None = None) -> None:
        path = base / kind / f"{self.names[index]}.png"
        if not (self.resume and path.exists()):  # resuming: a finished file (renamed into place when complete)
            self.png.write(path, frame)
        shown = frame if preview is None else preview
        for suffix, cls in ((".mp4", Mp4Writer), (".gif", GifWriter)):
            if suffix[1:] not in self.write or kind not in self.previewed:
                continue
            video = base / f"{kind}{suffix}"
            if video not in self.videos:
                self.videos[video] = cls(video, self.fps)
            self.videos[video].write(shown)

    def stage1_part(self, part: slice, masks: torch.Tensor, rgb: torch.Tensor | None) -> None:
        rows = slice(self.n * self.k, (self.n + 1) * self.k)
        mine = masks[rows]  # [K, t, H, W]
        for kind, base, k in self.sequences:
            if kind == "amodal_masks":
                frames = _mask_u8(mine[k])
            elif kind == "overlay":
                frames = _overlay(rgb, mine[k])
            elif kind == "consensus_masks":
                frames = _mask_u8(hypotheses.consensus(mine.unsqueeze(1).flatten(0, 1), self.k)[0])
            else:  # agreement
                frames = (hypotheses.agreement(mine.unsqueeze(1).flatten(0, 1), self.k)[0] * 255).round().to(
                    torch.uint8).numpy()
            for i, frame in enumerate(frames):
                self._emit(kind, base, part.start + i, frame)

    def stage2_part(self, part: slice, layers: torch.Tensor, alpha: torch.Tensor, frames: torch.Tensor) -> None:
        """One part of stage 2's results: ``layers`` ``[R, t, H, W, 4]`` uint8 RGBA (the colours, white outside the
        object, and alpha = the object's full shape ``alpha`` ``[R, t, H, W]`` bool), handed to the writers as
        they are (a new array per part)."""
        rows = slice(self.n * self.k, (self.n + 1) * self.k)
        for k, (layer, shape) in enumerate(zip(layers[rows], alpha[rows])):
            for kind, base in [(kind, base) for kind, base, kk in self.sequences if kk == k]:
                if kind == "layer":
                    out, shown = layer.numpy(), _over_grey(layer, shape).numpy()
                elif kind == "amodal_rgb":
                    out, shown = layer[..., :3].numpy(), None
                else:  # overlay: alpha is stage 1's full mask (it contains the visible mask), what stage 1 wrote
                    out, shown = _overlay(frames, shape), None
                for i in range(out.shape[0]):
                    self._emit(kind, base, part.start + i, np.ascontiguousarray(out[i]),
                               None if shown is None else shown[i])

    def close(self) -> None:
        self.png.close()
        for video in self.videos.values():
            video.close()
        self.videos = {}


def _over_grey(layer: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """The preview of RGBA ``layer`` ``[t, H, W, 4]`` uint8 (white outside ``shape``): `PREVIEW_GREY` outside
    ``shape`` ``[t, H, W]``, as RGBA ``[t, H, W, 4]`` (the writers ignore the alpha). Computed a pixel at a time
    as one 32-bit number, by arithmetic: a mask broadcast over the 3 colours is not vectorized and costs ten times
    as much. Outside the shape the pixel is white, so subtracting (white - grey) there gives grey exactly."""
    pixels = layer.contiguous().view(torch.int32)[..., 0]  # R, G, B, A in one number (either byte order)
    white, grey = (torch.tensor([[value] * 3 + [0]], dtype=torch.uint8).view(torch.int32)
                   for value in (255, PREVIEW_GREY))
    outside = (~shape).view(torch.uint8).to(torch.int32)  # 0/1
    return torch.sub(pixels, outside.mul_(int(white - grey))).view(torch.uint8).view(*layer.shape)


def _mask_u8_tensor(mask: torch.Tensor) -> torch.Tensor:
    return mask.to(torch.uint8) * 255


def _mask_u8(mask: torch.Tensor) -> np.ndarray:
    return _mask_u8_tensor(mask).numpy()


def _overlay(frames: torch.Tensor, mask: torch.Tensor, colour=OVERLAY_TINT, alpha: float = 0.5) -> np.ndarray:
    """Frames with the full mask tinted: ``[t, H, W, 3]`` uint8."""
    tint = torch.tensor(colour, dtype=torch.float32)
    base = frames.float() if frames.dtype == torch.uint8 else frames.float() * 255
    blended = base * (1 - alpha) + tint * alpha
    return torch.where(mask[..., None], blended, base).round().to(torch.uint8).numpy()
