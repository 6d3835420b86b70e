"""Production-scale footage: the pack's own cost and memory per node call at 1080p (or 4K), and the quality of
the resolution handling measured with an oracle sampler.

Speed and memory (``--speed``): a synthetic clip of ``--frames`` frames at the input size goes through the node
calls AmodalMaskSVD, AmodalContentSVD and every CompositeEdit mode, with the tiny checkpoints (processing size
``--processing``, ``--steps`` steps), on two kinds of masks (``--masks``):

* ``clean``: the clip's own visible masks (stage 1's input), its true amodal masks (stage 2's and CompositeEdit's);
  a few smooth shapes, as a car or a box gives.
* ``fragmented``: stage 1's own output on the clean clip (the tiny random-weight model's masks: blobs of noise over
  half the frame, every few pixels an edge), as the amodal masks of stage 2 and CompositeEdit and as the visible
  masks of stage 1; the visible masks of the later calls and the occluder stay clean. Its boundary is some 15 times
  as long as the clean masks', as hair, foliage or a crowd gives: the pack's cost must not grow with it.

The model's share is the same call on a small copy of the clip (135x240): the model works at the processing size
whatever the input size, so ``(time at full size - time on the small copy) / frames`` is the pack's own cost per
frame (conditions, upscaling, compositing, checks), printed beside its target (`TARGETS`, s/frame at 1080p).
Every call runs ``--repeats`` times as a pair, on the small copy and at full size right after (so both see the
machine in the same state), and the median pair by its difference is shown. Peak extra memory is the most memory
in use during the call above what was in use before it (the C allocator's count where it gives one, else the RSS;
sampled every 2 ms), shown against the bytes of the call's inputs; it is measured in one more run of every call
before the timed ones, because the sampling thread slows the call it watches (by about 0.01 s/frame on
AmodalContentSVD: the timed runs are not sampled). ``--allocator keep``
(default) keeps freed memory in the process and touches ``--warm-gib`` of it once before measuring, so the times
measure the pack's work in a process that has run before (as ComfyUI's has) rather than this virtual machine's cost
of handing out new pages (see `models/host/allocator.py`); ``--allocator default`` includes that cost.

Quality (``--quality``): synthetic clips rendered at the input size, one with small and one with large objects,
through the stage functions with an `OracleSampler` (the ground truth at the processing size behind the
pipeline's ``sample`` interface), so only the pack's resolution handling is measured: amodal-mask IoU and
boundary F-score (1 px tolerance) at the input size for ``smooth`` vs ``reference`` upscaling and ``frame`` vs
``object`` regions, and the largest error of the visible pixels of stage 2 (must be 0).

    python benchmarks/benchmark_resolution.py                       # 48 frames at 1080p, both parts
    python benchmarks/benchmark_resolution.py --4k --frames 12      # 2160x3840
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from diffusion_vas.models.base.memory import resident_memory
from diffusion_vas.models.engine.options import parse_size

logger = logging.getLogger("benchmark_resolution")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "parity"
SMALL_COPY = (135, 240)
COMPOSITE_MODES = ("reveal", "xray", "remove_occluder", "layer", "move")
MASK_KINDS = ("clean", "fragmented")
# The pack's own cost per frame at 1080p each call must stay within, on either kind of masks (s/frame): the two
# modes that build a clean plate (a temporal median over the clip) get twice the others' budget.
TARGETS = {"AmodalMaskSVD": 0.05, "AmodalContentSVD": 0.05,
           **{f"CompositeEdit {mode}": 0.05 for mode in COMPOSITE_MODES},
           "CompositeEdit remove_occluder": 0.10, "CompositeEdit move": 0.10}


# -- memory ------------------------------------------------------------------------------------------------------

def rss_bytes() -> int:
    rss = resident_memory()
    if rss is None:
        raise SystemExit("this platform reports no resident memory: install psutil")
    return rss


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def _allocated_counter():
    """``() -> bytes`` the C allocator has handed out and not taken back (glibc's ``mallinfo2``: heap in use plus
    mmapped blocks), or None where there is no such call. Unlike the RSS it does not count freed memory the
    process keeps (`--allocator keep`), so the figure means the same with either allocator setting."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2

    def allocated() -> int:
        info = mallinfo2()
        return info.uordblks + info.hblkhd
    return allocated


ALLOCATED = _allocated_counter()


class PeakRSS:
    """Highest memory in use while the block runs, sampled every 2 ms by a thread; ``extra`` is above the value at
    entry. Memory in use is what the C allocator has handed out (`ALLOCATED`) where it can tell, else the RSS."""

    def __enter__(self):
        self.measure = ALLOCATED or rss_bytes
        self.start = self.peak = self.measure()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.measure())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure())
        self.extra = self.peak - self.start


def nbytes(*tensors) -> int:
    """Bytes held by the tensors (a view counts its storage once)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


# -- speed ------------------------------------------------------------------------------------------------------

def speed_clip(frames: int, size: tuple[int, int]):
    """ComfyUI-typed inputs at ``size``: a synthetic clip rendered small and upsampled (content is irrelevant)."""
    from diffusion_vas.models.evaluation.synthetic import SyntheticSpec, generate_clip

    clip = generate_clip(SyntheticSpec(frames=frames, height=270, width=480, object_size=(0.2, 0.3)), seed=3)

    def up_masks(m):
        return F.interpolate(m.float()[:, None], size=size, mode="nearest")[:, 0]

    def up_rgb(x):
        return F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear").clamp(0, 1).permute(0, 2, 3, 1).contiguous()

    depth = up_masks(clip.depth)[..., None].expand(-1, -1, -1, 3).contiguous()
    return dict(images=up_rgb(clip.rgb), modal=up_masks(clip.modal[0]), amodal=up_masks(clip.amodal[0]),
                occluder=up_masks(clip.occluder), depth=depth)


def fragment(inputs: dict, model1, fast: dict) -> dict:
    """The ``fragmented`` kind of ``inputs``: stage 1's output on the clean clip as the amodal masks of the later
    calls and as stage 1's own visible masks."""
    from diffusion_vas.nodes import stages

    masks = stages.AmodalMaskSVD().predict(model1, inputs["modal"], inputs["depth"], **fast)[0]
    return {**inputs, "amodal": masks, "stage1_modal": masks}


def node_calls(inputs: dict, model1, model2, fast: dict):
    """``(name, inputs tuple, call)`` per node call; stage 2's output feeds CompositeEdit. Stage 1 gets
    ``inputs["stage1_modal"]`` where there is one, else the visible masks."""
    from diffusion_vas.nodes import composite, stages

    state = {}
    modal1 = inputs.get("stage1_modal", inputs["modal"])

    def mask_call():
        stages.AmodalMaskSVD().predict(model1, modal1, inputs["depth"], **fast)

    def content_call():
        state["rgb"] = stages.AmodalContentSVD().complete(model2, inputs["images"], inputs["modal"],
                                                          inputs["amodal"], **fast)[0]

    calls = [("AmodalMaskSVD", lambda: (modal1, inputs["depth"]), mask_call),
             ("AmodalContentSVD", lambda: (inputs["images"], inputs["modal"], inputs["amodal"]), content_call)]
    for mode in COMPOSITE_MODES:
        def edit(mode=mode):
            composite.CompositeEdit().composite(inputs["images"], state["rgb"], inputs["amodal"], mode,
                                                modal_masks=inputs["modal"], occluder_masks=inputs["occluder"],
                                                offset_x=40, offset_y=10)
        calls.append((f"CompositeEdit {mode}",
                      lambda: (inputs["images"], state["rgb"], inputs["amodal"], inputs["modal"], inputs["occluder"]),
                      edit))
    return calls


def measure_speed(args) -> list[dict]:
    from diffusion_vas.nodes import loader

    model1 = loader.DiffusionVASLoader().load(model=str(args.stage1), precision="fp32")[0]
    model2 = loader.DiffusionVASLoader().load(model=str(args.stage2), precision="fp32")[0]
    fast = dict(steps=args.steps, width=args.processing[1], height=args.processing[0], seed=1)
    sizes = {"small": SMALL_COPY, "full": args.size}
    rows = []
    for kind in args.masks:
        clips = {label: speed_clip(args.frames, size) for label, size in sizes.items()}
        if kind == "fragmented":
            clips = {label: fragment(inputs, model1, fast) for label, inputs in clips.items()}
        runs: dict[str, list] = {}
        memory_of: dict[str, tuple[int, int]] = {}
        # run 0 measures memory: each call once with the memory sampler (a thread waking every 2 ms, which slows
        # the call it watches: about 0.01 s/frame on AmodalContentSVD); runs 1.. are timed without it
        for repeat in range(args.repeats + 1):
            calls = {label: node_calls(inputs, model1, model2, fast) for label, inputs in clips.items()}
            # each call on the small copy, then at full size right after: a pair shares the machine's state of the
            # moment (a shared machine has slow spells lasting seconds), and the pair's difference is the pack's cost
            for small, full in zip(calls["small"], calls["full"]):
                pair = []
                for label, (name, held, call) in (("small", small), ("full", full)):
                    with (PeakRSS() if repeat == 0 else contextlib.nullcontext()) as memory:
                        start = time.perf_counter()
                        call()
                        seconds = time.perf_counter() - start
                    if repeat == 0:
                        logger.info("%s, %s masks, at %s (memory run): peak extra memory %.2f GiB", name, kind,
                                    tuple(clips[label]["images"].shape[1:3]), memory.extra / 2 ** 30)
                        if label == "full":
                            memory_of[name] = (memory.extra, nbytes(*held()))
                        continue
                    pair.append(seconds)
                    logger.info("%s, %s masks, at %s (run %d): %.2f s", name, kind,
                                tuple(clips[label]["images"].shape[1:3]), repeat, seconds)
                if repeat:
                    runs.setdefault(full[0], []).append(pair)
        for name, pairs in runs.items():
            small, full = sorted(pairs, key=lambda pair: pair[1] - pair[0])[len(pairs) // 2]  # the median pair
            extra, inputs = memory_of[name]
            rows.append(dict(masks=kind, call=name, seconds=full, model=small, own=(full - small) / args.frames,
                             extra=extra, inputs=inputs))
        del clips
    return rows


# -- quality ----------------------------------------------------------------------------------------------------

def boundary(mask: torch.Tensor) -> torch.Tensor:
    """``[T, H, W]`` bool -> its inner boundary (mask pixels with a 4-neighbour outside)."""
    outside = (~mask)[:, None].float()
    near = F.max_pool2d(F.pad(outside, (1, 1, 1, 1), value=0.0), 3, stride=1)[:, 0] > 0
    return mask & near


def boundary_f(pred: torch.Tensor, truth: torch.Tensor, tolerance: int = 1) -> float:
    """Boundary F-score: precision and recall of boundary pixels matched within ``tolerance`` px (chessboard)."""
    bp, bt = boundary(pred), boundary(truth)
    k = 2 * tolerance + 1
    near_t = F.max_pool2d(bt[:, None].float(), k, stride=1, padding=tolerance)[:, 0] > 0
    near_p = F.max_pool2d(bp[:, None].float(), k, stride=1, padding=tolerance)[:, 0] > 0
    precision = (bp & near_t).sum() / bp.sum().clamp_min(1)
    recall = (bt & near_p).sum() / bt.sum().clamp_min(1)
    return float(2 * precision * recall / (precision + recall).clamp_min(1e-12))


def iou(pred: torch.Tensor, truth: torch.Tensor) -> float:
    return float((pred & truth).sum() / (pred | truth).sum().clamp_min(1))


def measure_quality(args) -> list[dict]:
    from diffusion_vas.models import complete_content, predict_amodal_masks
    from diffusion_vas.models.evaluation.oracle import OracleSampler, oracle_mask_frames, oracle_rgb_frames
    from diffusion_vas.models.evaluation.synthetic import SyntheticSpec, generate_clip
    from diffusion_vas.models.stages import amodal_stage
    from diffusion_vas.models.base.sequences import tensor_masks

    rows = []
    height, width = args.size
    for label, object_size in (("small", (0.03, 0.05)), ("large", (0.22, 0.34))):
        spec = SyntheticSpec(frames=args.quality_frames, height=height, width=width, object_size=object_size,
                             motion=args.motion)
        clip = generate_clip(spec, seed=args.seed)
        modal, amodal = clip.modal, clip.amodal
        for region in ("frame", "object"):
            boxes = amodal_stage.object_boxes(tensor_masks(modal, "modal"), args.quality_processing, region, 1.0)
            oracle = OracleSampler(oracle_mask_frames(amodal, boxes, args.quality_processing))
            for upscale in ("smooth", "reference"):
                masks = predict_amodal_masks(oracle, modal, clip.depth, args.quality_processing, region=region,
                                             mask_upscale=upscale).masks
                rows.append(dict(objects=label, region=region, upscale=upscale, iou=iou(masks[0], amodal[0]),
                                 bf=boundary_f(masks[0], amodal[0])))
            colours = torch.where(amodal[..., None], clip.amodal_rgb, 1.0)
            frames = oracle_rgb_frames(colours, amodal, boxes, args.quality_processing)
            out = complete_content(OracleSampler(frames), clip.rgb, modal, amodal, args.quality_processing,
                                   region=region).rgb[0]
            error = (out[modal[0]] - clip.rgb[modal[0]]).abs()
            rows[-1]["visible_error"] = rows[-2]["visible_error"] = float(error.max()) if error.numel() else 0.0
        del clip
    return rows


# -- main -------------------------------------------------------------------------------------------------------

def print_table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table (as the README quotes it)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48, help="frames of the speed clip (default 48)")
    parser.add_argument("--size", type=parse_size, default=(1080, 1920), help="input HEIGHTxWIDTH (1080x1920)")
    parser.add_argument("--4k", dest="uhd", action="store_true", help="input 2160x3840")
    parser.add_argument("--processing", type=parse_size, default=(64, 128), help="speed: processing size (64x128)")
    parser.add_argument("--steps", type=int, default=2, help="speed: denoising steps (2)")
    parser.add_argument("--masks", type=lambda text: text.split(","), default=list(MASK_KINDS),
                        help="speed: kinds of masks, comma-separated (clean,fragmented)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="speed: (small copy, full size) pairs of runs of every call; the median pair counts (3)")
    parser.add_argument("--stage1", type=Path, default=SHARED / "tiny-amodal-segmentation")
    parser.add_argument("--stage2", type=Path, default=SHARED / "tiny-content-completion")
    parser.add_argument("--quality-frames", type=int, default=8, help="frames of each quality clip (8)")
    parser.add_argument("--quality-processing", type=parse_size, default=(256, 512),
                        help="quality: processing size of the oracle (256x512, as trained)")
    parser.add_argument("--motion", type=float, default=0.1,
                        help="quality: how far objects move over the clip (SyntheticSpec.motion; 0.1: a short shot)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--allocator", choices=("keep", "default"), default="keep",
                        help="keep: freed memory stays in the process, so the figures measure the pack's work and "
                             "not the machine's cost of handing pages back and forth (see models/host/allocator.py); "
                             "default: the C library's own settings (default: %(default)s)")
    parser.add_argument("--warm-gib", type=float, default=10.0,
                        help="with --allocator keep: GiB of memory touched once before measuring (default: %(default)s)")
    parser.add_argument("--speed", action="store_true", help="only the speed and memory part")
    parser.add_argument("--quality", action="store_true", help="only the quality part")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if set(args.masks) - set(MASK_KINDS):
        parser.error(f"--masks: choose from {','.join(MASK_KINDS)}, got {','.join(args.masks)}")
    if args.uhd:
        args.size = (2160, 3840)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.allocator == "keep":
        from diffusion_vas.models.host.allocator import tune_for_long_runs

        tune_for_long_runs(keep_everything=True)
        # the process's memory touched once up front, as a long-running ComfyUI's has been: otherwise the call
        # that first needs more than any before pays for every new page (2 s of the first reveal after stage 2)
        warm = torch.empty(int(args.warm_gib * 2 ** 30) // 4)
        warm.fill_(0)
        del warm
    both = not (args.speed or args.quality)
    load = os.getloadavg()
    print(f"input {args.size[0]}x{args.size[1]}, torch threads {torch.get_num_threads()}, allocator {args.allocator}, "
          f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    if args.speed or both:
        rows = measure_speed(args)
        print(f"\n{args.frames} frames, processing {args.processing[0]}x{args.processing[1]}, {args.steps} steps, "
              f"median of {args.repeats} pairs of runs")
        target = "target s/frame" + (" (1080p)" if args.size != (1080, 1920) else "")
        print_table(["masks", "node call", "total s", "model's share s (small copy)", "pack's own s/frame", target,
                     "within", "peak extra memory", "inputs", "ratio"],
                    [[r["masks"], r["call"], f"{r['seconds']:.2f}", f"{r['model']:.2f}", f"{r['own']:.3f}",
                      f"{TARGETS[r['call']]:.2f}", "yes" if r["own"] <= TARGETS[r["call"]] else "NO",
                      f"{r['extra'] / 2 ** 30:.2f} GiB", f"{r['inputs'] / 2 ** 30:.2f} GiB",
                      f"{r['extra'] / r['inputs']:.2f}x"] for r in rows])
    if args.quality or both:
        rows = measure_quality(args)
        print(f"\noracle sampler, processing {args.quality_processing[0]}x{args.quality_processing[1]}, "
              f"{args.quality_frames} frames at {args.size[0]}x{args.size[1]}")
        print_table(["objects", "region", "upscale", "IoU", "boundary F (1 px)", "visible-pixel error"],
                    [[r["objects"], r["region"], r["upscale"], f"{100 * r['iou']:.2f}", f"{100 * r['bf']:.2f}",
                      f"{r['visible_error']:.1g}"] for r in rows])
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


if __name__ == "__main__":
    main()
