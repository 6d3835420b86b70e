"""Real shots through ``diffusion-vas run``: memory flat in the shot's length, and the host side bound by I/O.

Two measurements on synthetic shots (an H.264 MP4 at 24 fps made here, a textured scene with a disc passing behind
a bar and a fragmented object at the frame's edge, and one binary mask PNG per source frame):

* ``--lengths 15 60`` (seconds): each shot runs as the command line does, in a fresh process, ``--every 3``; the
  wall time and the process's peak RSS are printed with their ratios to the first length's.
* ``--floor``: on the first length, the command line's own time (everything except the models' forward passes,
  which are timed inside the run) beside the I/O floor measured in the same process: decoding the selected frames
  plus writing the same PNG files (the run's own output, read into memory beforehand) and one MP4 preview with the
  same encoder settings. The two alternate ``--repeats`` times; the medians and their ratio are printed.

The models are the tiny checkpoints (``../shared/parity`` or `--models`): the host side is what is measured.

    python benchmarks/benchmark_shot.py --lengths 15 60 --floor          # 1080p
    python benchmarks/benchmark_shot.py --lengths 60 --size 2160x3840     # a minute of 4K
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("DIFFUSION_VAS_SHARED", HERE.parents[1] / "shared")) / "parity"
FPS = 24


def make_shot(folder: Path, seconds: float, height: int, width: int) -> tuple[Path, Path]:
    """``folder/shot.mp4`` and ``folder/masks/`` (one binary PNG per source frame), made once and reused."""
    import av
    from PIL import Image

    video, masks = folder / "shot.mp4", folder / "masks"
    frames = int(round(seconds * FPS))
    if video.is_file() and masks.is_dir() and len(list(masks.glob("*.png"))) == frames:
        return video, masks
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    scene = np.stack([96 + 60 * np.sin(xs / 37.0) * np.cos(ys / 53.0), 110 + 50 * np.cos(xs / 71.0),
                      90 + 40 * np.sin((xs + ys) / 97.0)], axis=-1)
    scene += rng.normal(0, 6, scene.shape).astype(np.float32)
    bar = (xs > width * 0.45) & (xs < width * 0.55)
    speckle = rng.random((height, width)) > 0.55
    radius = height * 0.22
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for t in range(frames):
            phase = t / max(frames - 1, 1)
            cx = width * (0.15 + 0.7 * (0.5 - 0.5 * np.cos(2 * np.pi * 3 * phase)))
            disc = (ys - height * 0.45) ** 2 + (xs - cx) ** 2 <= radius ** 2
            hair = ((ys - height * 0.8) ** 2 + (xs - width * 0.02) ** 2 <= (height * 0.15) ** 2) & speckle
            rgb = scene.copy()
            rgb[disc] = (210, 80, 50)
            rgb[hair] = (30, 30, 30)
            rgb[bar] = (40, 160, 220)
            frame = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
            visible = (disc | hair) & ~bar
            Image.fromarray(visible.astype(np.uint8) * 255).save(masks / f"{t:05d}.png", compress_level=1)
        container.mux(stream.encode())
    return video, masks


def models(args) -> list[str]:
    root = Path(args.models) if args.models else SHARED
    return ["--stage1", str(root / "tiny-amodal-segmentation"), "--stage2", str(root / "tiny-content-completion"),
            "--depth-model", str(root / "tiny-depth-anything-v2")]


def run_args(video: Path, masks: Path, out: Path, args) -> list[str]:
    return ["run", "--frames", str(video), "--masks", str(masks), "--out", str(out), "--every", str(args.every),
            "--size", args.processing, "--steps", str(args.steps), "--overwrite", "--quiet", *models(args)]


# the command line in a fresh process, then its lifetime peak RSS in bytes (`peak_rss`) as the last line of stderr
PEAK_AFTER_RUN = ("import json, sys, diffusion_vas.commands as c; from diffusion_vas.models.base.memory import "
                  "peak_rss; code = c.main(sys.argv[1:]); print(json.dumps(peak_rss()), file=sys.stderr); "
                  "sys.exit(code)")


def measure_lengths(args) -> list[dict]:
    rows = []
    for seconds in args.lengths:
        video, masks = make_shot(args.work / f"{args.size[0]}p_{seconds}s", seconds, *args.size)
        out = args.work / "out"
        shutil.rmtree(out, ignore_errors=True)  # every run writes all its files into an empty folder
        command = [sys.executable, "-c", PEAK_AFTER_RUN, *run_args(video, masks, out, args)]
        began = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - began
        if result.returncode:
            raise SystemExit(f"the run failed:\n{result.stderr}")
        peak = json.loads(result.stderr.strip().splitlines()[-1])
        if peak is None:
            raise SystemExit("this platform reports no peak memory: install psutil")
        written = len(list(out.rglob("*.png")))
        rows.append({"seconds": seconds, "frames": int(seconds * FPS) // args.every, "wall_s": wall,
                     "peak_rss_gib": peak / 2**30, "pngs": written})
        print(f"{seconds:>5g} s shot: {rows[-1]['frames']} processed frames, {written} PNGs, wall {wall:.1f} s, "
              f"peak RSS {peak / 2**30:.2f} GiB", flush=True)
    first = rows[0]
    for row in rows[1:]:
        print(f"{row['seconds']:g} s vs {first['seconds']:g} s: wall x{row['wall_s'] / first['wall_s']:.2f}, "
              f"peak RSS x{row['peak_rss_gib'] / first['peak_rss_gib']:.2f}")
    return rows


class ModelTimer:
    """Seconds spent in the models' forward passes (UNet, VAE encode/decode, CLIP, depth network) of a run."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, function):
        def timed(*a, **k):
            began = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                self.seconds += time.perf_counter() - began
        return timed

    def install(self):
        import diffusion_vas.models.shot.run as shot_run

        load_pipeline, load_depth = shot_run.load_pipeline, shot_run.load_depth_model

        def pipeline(*a, **k):
            pipe = load_pipeline(*a, **k)
            pipe.unet.forward = self.wrap(pipe.unet.forward)
            pipe.image_encoder.forward = self.wrap(pipe.image_encoder.forward)
            pipe.vae.encode = self.wrap(pipe.vae.encode)
            pipe.vae.decode = self.wrap(pipe.vae.decode)
            return pipe

        def depth(*a, **k):
            estimator = load_depth(*a, **k)
            estimator.model.forward = self.wrap(estimator.model.forward)
            return estimator

        shot_run.load_pipeline, shot_run.load_depth_model = pipeline, depth


def io_floor(video: Path, out: Path, every: int, files: list[tuple[Path, np.ndarray]], preview: list[np.ndarray],
             target: Path) -> float:
    """Seconds to decode the selected frames and write ``files`` (PNG) and ``preview`` (one MP4) into ``target``,
    with the run's own readers and writers (PyAV decoding, the PNG thread pool, libx264 at the run's preset)."""
    from diffusion_vas.models.io.frame_source import VideoFrames
    from diffusion_vas.models.shot.outputs import Mp4Writer, PngWriter
    from diffusion_vas.models.base.chunking import chunks

    if target.exists():
        shutil.rmtree(target)
    began = time.perf_counter()
    frames = VideoFrames(video, 0, 0, every)
    for _ in frames.read(chunks(frames.count, frame_pixels=frames.size[0] * frames.size[1])):
        pass
    png = PngWriter()
    for path, array in files:
        path = target / path
        path.parent.mkdir(parents=True, exist_ok=True)
        png.write(path, array)
    mp4 = Mp4Writer(target / "preview.mp4", FPS / every)
    for frame in preview:
        mp4.write(frame)
    mp4.close()
    png.close()
    return time.perf_counter() - began


def measure_floor(args) -> dict:
    from PIL import Image

    from diffusion_vas.commands import build_parser
    from diffusion_vas.commands.run import settings_from_args
    from diffusion_vas.models.shot import run_shot

    from diffusion_vas.models.host.allocator import tune_for_long_runs

    tune_for_long_runs()  # as the command line does (the floor's own allocations profit as much)
    seconds = args.lengths[0]
    video, masks = make_shot(args.work / f"{args.size[0]}p_{seconds}s", seconds, *args.size)
    out = args.work / "floor_run"
    timer = ModelTimer()
    timer.install()
    runs, floors = [], []
    files = preview = None
    for repeat in range(args.repeats):
        shutil.rmtree(out, ignore_errors=True)
        timer.seconds = 0.0
        began = time.perf_counter()
        run_shot(settings_from_args(build_parser().parse_args(run_args(video, masks, out, args))))
        wall = time.perf_counter() - began
        runs.append((wall, timer.seconds))
        if files is None:  # the run's own PNGs, held in memory for the floor
            files = [(p.relative_to(out), np.asarray(Image.open(p))) for p in sorted(out.rglob("*.png"))
                     if ".diffusion-vas" not in p.parts]
            preview = [a for p, a in files if p.parent.name == "layer"]
            preview = [a[..., :3] for a in preview]
        floors.append(io_floor(video, out, args.every, files, preview, args.work / "floor_files"))
        print(f"pair {repeat + 1}: run {wall:.1f} s (models {timer.seconds:.1f} s, own {wall - timer.seconds:.1f} s), "
              f"I/O floor {floors[-1]:.1f} s", flush=True)
    own = statistics.median(w - m for w, m in runs)
    floor = statistics.median(floors)
    frames = int(seconds * FPS) // args.every
    print(f"\n{args.size[1]}x{args.size[0]}, {frames} processed frames, {len(files)} PNGs + MP4 previews per run:")
    print(f"  the command line's own time {own:.1f} s, the I/O floor {floor:.1f} s: ratio {own / floor:.2f} "
          f"(median of {args.repeats} alternating pairs; models' forward passes "
          f"{statistics.median(m for _, m in runs):.1f} s)")
    return {"own_s": own, "floor_s": floor, "ratio": own / floor, "frames": frames}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=float, nargs="+", default=[15, 60], help="shot lengths in seconds")
    parser.add_argument("--size", default="1080x1920", help="shot HEIGHTxWIDTH (default: %(default)s)")
    parser.add_argument("--every", type=int, default=3, help="--every of the runs (default: %(default)s)")
    parser.add_argument("--processing", default="64x128", help="--size of the runs (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=2, help="--steps of the runs (default: %(default)s)")
    parser.add_argument("--models", help="folder with the tiny checkpoints (default: ../shared/parity)")
    parser.add_argument("--work", type=Path, default=Path("outputs/benchmark_shot"),
                        help="where the shots and outputs go (default: %(default)s)")
    parser.add_argument("--floor", action="store_true", help="also measure the I/O floor on the first length")
    parser.add_argument("--no-lengths", action="store_true", help="skip the length runs")
    parser.add_argument("--repeats", type=int, default=3, help="alternating pairs for --floor (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    logging.basicConfig(level=logging.WARNING)
    results = {"machine": f"{os.cpu_count()} cores"}
    if not args.no_lengths:
        results["lengths"] = measure_lengths(args)
    if args.floor:
        results["floor"] = measure_floor(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
