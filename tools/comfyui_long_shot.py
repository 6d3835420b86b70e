"""A long shot through the shipped long-shot workflow in a real ComfyUI: frames processed, wall time, peak RSS.

Makes a synthetic shot (``make_shot`` of ``benchmarks/benchmark_shot.py``: an H.264 MP4 at 24 fps and one binary
mask PNG per source frame, made once per length and size under ``--work``), starts ComfyUI (``--cpu`` on loopback,
a fresh ``--base-directory`` under ``--work`` holding only this pack in ``custom_nodes/``, the tiny checkpoints of
``../shared/parity`` under the names the workflow uses, and the shot in ``input/``), and queues
``workflows/Diffusion-VAS long shot.json`` converted to API format with these changes: Load Video reads the shot,
Select Frames takes every ``--every``-th frame, Load Visible Masks reads the mask folder by its absolute path, and
the stage nodes and Pseudo-Depth work at ``--processing`` (default 64x128) with ``--steps`` (default 2) denoising
steps. While it runs, the ComfyUI process's resident memory is sampled every second beside the log lines as they
appear (``--work/<shot>/timeline.tsv``); after the run its peak (``VmHWM`` of ``/proc/PID/status``, the kernel's
high-water mark of the whole process life, startup included) is read before the server is stopped.

Prints the frames processed, the wall time of the prompt, the peak RSS and the frame count and size of every
output (the two saved MP4s, counted by decoding, and the preview's images)::

    python tools/comfyui_long_shot.py --seconds 60 --size 1080x1920      # a minute of 1080p, every 3rd frame

Needs ``COMFYUI_DIR`` (or ``--comfyui-dir``) and ``COMFYUI_PYTHON`` (or ``--comfyui-python``, ComfyUI's
interpreter, with PyAV) as the integration test does; this script's interpreter needs NumPy, PyAV and Pillow
(``make_shot``). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DIFFUSION_VAS_SHARED", REPO.parent / "shared")) / "parity"
WORKFLOW = REPO / "workflows" / "Diffusion-VAS long shot.json"
PACK_FOLDER = "diffusion-vas"
CHECKPOINTS = {  # model folder in ComfyUI (the names the workflow uses) -> tiny checkpoint
    "diffusion_vas/diffusion-vas-amodal-segmentation": "tiny-amodal-segmentation",
    "diffusion_vas/diffusion-vas-content-completion": "tiny-content-completion",
}
TINY_DEPTH = "tiny-depth-anything-v2"
STAGE_NODES = ("AmodalMaskSVD", "AmodalContentSVD")
GIB = 2 ** 30


def load_make_shot():
    """``make_shot`` of ``benchmarks/benchmark_shot.py`` (not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location("benchmark_shot", REPO / "benchmarks" / "benchmark_shot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_shot, module.FPS


sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared ComfyUI client beside this file
import comfyui_client as client  # noqa: E402

free_port, request, to_api = client.free_port, client.http_json, client.to_api


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS``/``VmHWM`` (bytes) of a live process."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def prepare_base(base: Path, workflow: dict, models: Path, shot: Path) -> str:
    """The ComfyUI base directory; returns the shot's name in its input folder."""
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO, target_is_directory=True)
    links = {name: models / source for name, source in CHECKPOINTS.items()}
    for node in workflow["nodes"]:
        if node["type"] == "PseudoDepth":
            links[f"depthanything/{node['widgets_values'][0]}"] = models / TINY_DEPTH
    for name, source in links.items():
        if not source.is_dir():
            raise SystemExit(f"tiny checkpoint {source} not found (--models)")
        (base / "models" / name).parent.mkdir(parents=True, exist_ok=True)
        (base / "models" / name).symlink_to(source, target_is_directory=True)
    (base / "input").mkdir()
    name = f"long_shot_{shot.parent.name}.mp4"
    try:  # a file of the input folder itself: ComfyUI 0.3x refuses a link that leads out of it
        os.link(shot, base / "input" / name)
    except OSError:
        shutil.copyfile(shot, base / "input" / name)
    return name


def configure(prompt: dict, video: str, masks: Path, every: int, processing: tuple[int, int], steps: int) -> None:
    height, width = processing
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "LoadVideo":
            inputs["file"] = video
        elif kind == "SelectVideoFrames":
            inputs.update(start_frame=0, frame_count=0, every_nth=every)
        elif kind == "LoadModalMasks":
            inputs["folder"] = str(masks)
        elif kind == "PseudoDepth":
            inputs.update(width=width, height=height)
        elif kind in STAGE_NODES:
            inputs.update(width=width, height=height, steps=steps)


class Monitor(threading.Thread):
    """Samples the process's RSS every ``interval`` s and stamps the log's new lines with the time they appear."""

    def __init__(self, pid: int, log: Path, interval: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.log, self.interval = pid, log, interval
        self.began, self.stop, self.rows, self.peak_sampled = time.monotonic(), threading.Event(), [], 0
        self.offset = log.stat().st_size if log.exists() else 0

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()
        self.sample()

    def sample(self) -> None:
        try:
            rss = proc_status(self.pid)["VmRSS"]
        except (FileNotFoundError, KeyError):
            return
        self.peak_sampled = max(self.peak_sampled, rss)
        with self.log.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read()
        complete = text.rfind(b"\n") + 1
        self.offset += complete
        lines = [line.strip() for line in text[:complete].decode(errors="replace").replace("\r", "\n").split("\n")]
        self.rows.append((time.monotonic() - self.began, rss, [line for line in lines if line][-3:]))

    def write(self, path: Path) -> None:
        with path.open("w") as out:
            out.write("seconds\trss_gib\tlog lines that appeared\n")
            for seconds, rss, lines in self.rows:
                out.write(f"{seconds:.1f}\t{rss / GIB:.3f}\t{' | '.join(lines)[:400]}\n")


def count_frames(files: list[Path], python: str) -> dict[str, list]:
    """``{file name: [frames, width, height]}``, every frame decoded (ComfyUI's interpreter has PyAV)."""
    script = ("import av, json, sys\n"
              "out = {}\n"
              "for path in sys.argv[1:]:\n"
              "    with av.open(path) as c:\n"
              "        n, size = 0, None\n"
              "        for f in c.decode(video=0):\n"
              "            n, size = n + 1, (f.width, f.height)\n"
              "    out[path] = [n, *size]\n"
              "print(json.dumps(out))")
    result = subprocess.run([python, "-c", script, *map(str, files)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return {Path(k).name: v for k, v in json.loads(result.stdout).items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="length of the shot at 24 fps (default 60)")
    parser.add_argument("--size", default="1080x1920", help="HEIGHTxWIDTH of the shot (default 1080x1920)")
    parser.add_argument("--every", type=int, default=3, help="Select Frames' every_nth (default 3: 8 fps)")
    parser.add_argument("--processing", default="64x128", help="HEIGHTxWIDTH of the stage nodes and Pseudo-Depth")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps of both stages (default 2)")
    parser.add_argument("--work", type=Path, default=Path("outputs/comfyui_long_shot"),
                        help="folder for the shot (reused), the ComfyUI base directory and the timeline")
    parser.add_argument("--models", type=Path, default=SHARED, help="folder of the tiny checkpoints")
    parser.add_argument("--comfyui-dir", type=Path, default=os.environ.get("COMFYUI_DIR"))
    parser.add_argument("--comfyui-python", default=os.environ.get("COMFYUI_PYTHON", sys.executable))
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds to wait for the prompt")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.comfyui_dir is None or not (Path(args.comfyui_dir) / "main.py").is_file():
        parser.error("set --comfyui-dir (or COMFYUI_DIR) to a ComfyUI checkout")
    height, width = (int(v) for v in args.size.lower().split("x"))
    processing = tuple(int(v) for v in args.processing.lower().split("x"))

    make_shot, fps = load_make_shot()
    shot_dir = args.work.resolve() / f"{height}p_{args.seconds:g}s"
    began = time.perf_counter()
    video, masks = make_shot(shot_dir, args.seconds, height, width)
    print(f"shot: {video} ({int(round(args.seconds * fps))} frames at {fps} fps, {width}x{height}), masks {masks} "
          f"({time.perf_counter() - began:.0f} s)", flush=True)

    workflow = json.loads(WORKFLOW.read_text())
    base = shot_dir / "comfyui"
    shutil.rmtree(base, ignore_errors=True)
    video_name = prepare_base(base, workflow, args.models.resolve(), video)
    log = base / "comfyui.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(
            [args.comfyui_python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
             "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"],
            cwd=args.comfyui_dir, stdout=out, stderr=subprocess.STDOUT)
    monitor = None
    try:
        try:
            object_info = client.wait_for(f"{url}/object_info", process, 300, "ComfyUI", log)
        except RuntimeError as err:
            raise SystemExit(str(err)) from None
        prompt = to_api(workflow, object_info)
        configure(prompt, video_name, masks, args.every, processing, args.steps)
        idle = proc_status(process.pid)
        print(f"ComfyUI started (pid {process.pid}, RSS {idle['VmRSS'] / GIB:.2f} GiB); queueing the long-shot "
              f"workflow: every {args.every}, processing {processing[1]}x{processing[0]}, {args.steps} steps",
              flush=True)
        monitor = Monitor(process.pid, log)
        monitor.start()
        try:
            prompt_id = request(f"{url}/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})["prompt_id"]
        except urllib.error.HTTPError as err:
            raise SystemExit(f"ComfyUI rejected the prompt: {err.read().decode()[:4000]}")
        started = time.perf_counter()
        while True:
            history = request(f"{url}/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                break
            if process.poll() is not None:
                raise SystemExit(f"ComfyUI exited with {process.returncode} during the run:\n{log.read_text()[-4000:]}")
            if time.perf_counter() - started > args.timeout:
                raise SystemExit(f"the prompt did not finish within {args.timeout:.0f} s")
            time.sleep(2)
        wall = time.perf_counter() - started
        monitor.stop.set()
        monitor.join()
        memory = proc_status(process.pid)  # the high-water mark, read while the process lives
    finally:
        if monitor is not None:
            monitor.stop.set()
            monitor.write(shot_dir / "timeline.tsv")
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    if entry["status"]["status_str"] != "success":
        errors = [m for m in entry["status"]["messages"] if m[0] == "execution_error"]
        raise SystemExit(f"the workflow failed: {json.dumps(errors)[:4000]}\n{log.read_text()[-4000:]}")

    selected = [line[line.index("SelectVideoFrames:"):] for line in log.read_text().splitlines()
                if "SelectVideoFrames:" in line]  # after ComfyUI 0.3x's level prefix
    outputs = {}
    for node_id, results in entry["outputs"].items():
        node = prompt[node_id]
        files = [base / ("output" if item["type"] == "output" else "temp") / item["subfolder"] / item["filename"]
                 for key in ("images", "videos") for item in results.get(key, [])]
        outputs[node_id] = (node["class_type"], files)
    videos = [f for kind, files in outputs.values() if kind == "SaveVideo" for f in files]
    counts = count_frames(videos, args.comfyui_python)
    figures = {
        "shot": f"{args.seconds:g} s, {width}x{height}, {fps} fps", "every_nth": args.every,
        "frames_processed": int(selected[-1].split()[1]) if selected else None,
        "processing": f"{processing[1]}x{processing[0]}", "steps": args.steps, "wall_s": round(wall, 1),
        "peak_rss_gib": round(memory["VmHWM"] / GIB, 3), "peak_rss_sampled_gib": round(monitor.peak_sampled / GIB, 3),
        "rss_before_prompt_gib": round(idle["VmRSS"] / GIB, 3), "rss_after_prompt_gib": round(memory["VmRSS"] / GIB, 3),
        "videos": counts,
        "previews": {node_id: len(files) for node_id, (kind, files) in outputs.items() if kind == "PreviewImage"},
        "timeline": str(shot_dir / "timeline.tsv"),
    }
    print(f"frames processed: {figures['frames_processed']} (of {int(round(args.seconds * fps))}, every "
          f"{args.every})")
    print(f"wall time of the prompt: {wall:.1f} s")
    print(f"peak RSS of the ComfyUI process: {figures['peak_rss_gib']:.2f} GiB (VmHWM; sampled every second: "
          f"{figures['peak_rss_sampled_gib']:.2f} GiB; before the prompt {figures['rss_before_prompt_gib']:.2f} GiB, "
          f"after it {figures['rss_after_prompt_gib']:.2f} GiB)")
    for name, (frames, w, h) in counts.items():
        print(f"  {name}: {frames} frames, {w}x{h}")
    for node_id, count in figures["previews"].items():
        print(f"  preview (node {node_id}): {count} images")
    print(f"timeline: {figures['timeline']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return figures


if __name__ == "__main__":
    main()
