"""Listing the nodes and queueing a workflow: what the pack adds to each (target: at most 0.2 s more than without).

In this process, with the pack imported (no ComfyUI needed):

* listing: building what ``GET /object_info`` returns for each of the pack's nodes (ComfyUI's ``node_info``:
  INPUT_TYPES twice, outputs, names), all nodes together; without the pack this work does not exist;
* queueing: ``LoadModalMasks.IS_CHANGED`` (which ComfyUI calls at every queue) on a folder of ``--masks`` 1920x1080
  PNG masks made here (a disc moving across the frame: a few KB each, as real masks are), beside the hash of every
  file's bytes the node used before, for comparison;
* the example clip's placement at the pack's load: the first time (copy and MP4 encode, into an empty input folder)
  and every later start (the targets are there).

With ``--comfyui DIR`` (a ComfyUI checkout; ``--comfyui-python`` an interpreter with its requirements), two ComfyUI
servers run on loopback with ``--cpu``, one with the pack in ``custom_nodes/`` and one without, and:

* ``GET /object_info`` is timed on both, alternating, ``--repeats`` times;
* on the server with the pack, two prompts are queued alternately, each after a first run that fills the cache
  (``--cache-lru`` keeps both prompts' results): Load Visible Masks on the mask folder (one mask loaded, all
  listed) -> Convert Mask to Image -> Preview Image, and the same with core Solid Mask instead. The executor's own
  span (its ``execution_start`` to ``execution_success`` time stamps, milliseconds: the cache check with IS_CHANGED
  included) and the time ``POST /prompt`` takes to validate and queue are printed for both.

Figures are medians of ``--repeats`` runs.

    python benchmarks/benchmark_listing.py
    python benchmarks/benchmark_listing.py --comfyui /path/to/ComfyUI --comfyui-python /path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PACK_FOLDER = "diffusion-vas"
MASK_SIZE = (1080, 1920)


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def make_masks(folder: Path, count: int) -> Path:
    """``count`` binary 1920x1080 PNG masks in ``folder`` (made once, then reused)."""
    from PIL import Image

    if folder.is_dir() and len(list(folder.glob("*.png"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    height, width = MASK_SIZE
    ys, xs = np.ogrid[0:height, 0:width]
    radius = height * 0.2
    for t in range(count):
        cx = width * (0.15 + 0.7 * t / max(count - 1, 1))
        disc = (ys - height * 0.5) ** 2 + (xs - cx) ** 2 <= radius ** 2
        Image.fromarray(disc.astype(np.uint8) * 255).save(folder / f"{t:05d}.png")
    return folder


def node_info(name: str, cls, display_names: dict) -> dict:
    """What ComfyUI 0.8.0's ``server.node_info`` builds for a node (INPUT_TYPES called twice, as there)."""
    info = {"input": cls.INPUT_TYPES(), "input_order": {k: list(v) for k, v in cls.INPUT_TYPES().items()},
            "output": cls.RETURN_TYPES, "name": name, "display_name": display_names.get(name, name)}
    info["output_is_list"] = getattr(cls, "OUTPUT_IS_LIST", [False] * len(cls.RETURN_TYPES))
    info["output_name"] = getattr(cls, "RETURN_NAMES", info["output"])
    for key, attribute in (("description", "DESCRIPTION"), ("category", "CATEGORY"),
                           ("output_tooltips", "OUTPUT_TOOLTIPS")):
        info[key] = getattr(cls, attribute, "")
    info["output_node"] = bool(getattr(cls, "OUTPUT_NODE", False))
    return info


def hash_of_bytes(folder: Path) -> str:
    """The node's previous IS_CHANGED: the names and bytes of every image file."""
    from diffusion_vas.models import image_files

    digest = hashlib.sha256()
    for file in image_files(folder):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def in_process(masks: Path, repeats: int) -> None:
    from diffusion_vas import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    from diffusion_vas.models.host import policy
    from diffusion_vas.nodes import examples
    from diffusion_vas.nodes.masks import LoadModalMasks

    listing = median_time(lambda: {n: node_info(n, c, NODE_DISPLAY_NAME_MAPPINGS)
                                   for n, c in NODE_CLASS_MAPPINGS.items()}, repeats)
    print(f"in this process: listing the pack's {len(NODE_CLASS_MAPPINGS)} nodes (object_info entries): "
          f"{listing * 1000:.2f} ms")

    settings = dict(folder=str(masks), object_id=0, start_frame=0, frame_count=0, every_nth=1, mask_format="auto")
    LoadModalMasks.IS_CHANGED(**settings)  # the folder's metadata in the OS cache, as at a second queue
    hash_of_bytes(masks)
    new = median_time(lambda: LoadModalMasks.IS_CHANGED(**settings), repeats)
    old = median_time(lambda: hash_of_bytes(masks), repeats)
    sizes = [p.stat().st_size for p in masks.glob("*.png")]
    print(f"in this process: queueing, LoadModalMasks.IS_CHANGED on {len(sizes)} masks {MASK_SIZE[1]}x{MASK_SIZE[0]} "
          f"({statistics.median(sizes) / 1024:.1f} KB each, median): {new * 1000:.2f} ms "
          f"(previous, hashing every file's bytes: {old * 1000:.2f} ms, files in the OS cache)")

    class InputHost(policy.Host):
        def __init__(self, folder):
            self.folder = folder

        def input_directory(self):
            return self.folder

    first, again = [], []
    saved = policy.get_host()
    try:
        for _ in range(max(1, min(repeats, 5))):
            with tempfile.TemporaryDirectory() as folder:
                policy.set_host(InputHost(Path(folder)))
                examples._checked.clear()
                began = time.perf_counter()
                examples.install_examples()  # an empty input folder: copy and encode
                first.append(time.perf_counter() - began)
                examples._checked.clear()  # a later start: a fresh process, the targets there
                began = time.perf_counter()
                examples.install_examples()
                again.append(time.perf_counter() - began)
    finally:
        policy.set_host(saved)
        examples._checked.clear()
    print(f"in this process: placing the example clip at the pack's load: first start {statistics.median(first):.3f}"
          f" s, later starts {statistics.median(again) * 1000:.3f} ms")


def with_comfyui(args, masks: Path) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    import comfyui_client as client

    servers = {}
    with ExitStack() as stack:
        for label in ("without the pack", "with the pack"):
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="comfyui-listing-")))
            (base / "custom_nodes").mkdir()
            if label == "with the pack":
                (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO, target_is_directory=True)
            port = client.free_port()
            command = [args.comfyui_python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                       "--base-directory", str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:",
                       "--cache-lru", "16"]
            process = stack.enter_context(client.running(command, base / "comfyui.log", cwd=args.comfyui))
            servers[label] = (f"http://127.0.0.1:{port}", process, base)
        first_listing = {}
        for label, (url, process, base) in servers.items():
            first_listing[label] = client.wait_for(f"{url}/object_info", process, 600, f"ComfyUI ({label})",
                                                   base / "comfyui.log")
        base = servers["with the pack"][2]
        log = (base / "comfyui.log").read_text()
        imported = re.search(r"([\d.]+) seconds(?: \(IMPORT FAILED\))?: \S*" + re.escape(PACK_FOLDER), log)
        placed = sorted(p.name for p in (base / "input").iterdir())
        print(f"ComfyUI: the pack's import time as ComfyUI logs it: {imported.group(1) if imported else '?'} s "
              f"(first start: example clip placed, input folder {placed})")
        from diffusion_vas.nodes.examples import example_video_name

        video = example_video_name("synthetic_occlusion")
        print(f"ComfyUI: the first GET /object_info lists {video} among LoadVideo's files: "
              f"{video in json.dumps(first_listing['with the pack']['LoadVideo']['input'])}")

        def get(url):
            with urllib.request.urlopen(f"{url}/object_info", timeout=120) as response:
                return len(response.read())

        times = {label: [] for label in servers}
        sizes = {}
        for _ in range(args.repeats):
            for label, (url, _, _) in servers.items():
                began = time.perf_counter()
                sizes[label] = get(url)
                times[label].append(time.perf_counter() - began)
        medians = {label: statistics.median(t) for label, t in times.items()}
        for label in servers:
            print(f"ComfyUI: GET /object_info {label}: {medians[label] * 1000:.1f} ms ({sizes[label] / 1024:.0f} KiB)")
        print(f"ComfyUI: the pack adds {(medians['with the pack'] - medians['without the pack']) * 1000:.1f} ms "
              "to GET /object_info")

        url = servers["with the pack"][0]
        prompts = {
            "Load Visible Masks": {"1": {"class_type": "LoadModalMasks", "inputs": {
                "folder": str(masks), "object_id": 0, "start_frame": 0, "frame_count": 1, "every_nth": 1,
                "mask_format": "binary"}}},
            "core Solid Mask": {"1": {"class_type": "SolidMask", "inputs": {
                "value": 1.0, "width": MASK_SIZE[1], "height": MASK_SIZE[0]}}},
        }
        for prompt in prompts.values():
            prompt["2"] = {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}}
            prompt["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
        spans = {label: [] for label in prompts}
        posts = {label: [] for label in prompts}
        for round_ in range(args.repeats + 1):
            for label, prompt in prompts.items():
                began = time.perf_counter()
                queued = client.http_json(f"{url}/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
                posted = time.perf_counter() - began
                span, cached = wait_for_prompt(client, url, queued["prompt_id"])
                if round_:  # the first round fills the cache
                    if "1" not in cached:
                        raise SystemExit(f"{label}: the prompt ran again instead of coming from the cache")
                    spans[label].append(span)
                    posts[label].append(posted)
        for label in prompts:
            print(f"ComfyUI: queueing again (all cached) with {label}: executor {statistics.median(spans[label]):.0f} "
                  f"ms, POST /prompt {statistics.median(posts[label]) * 1000:.1f} ms")
        extra = statistics.median(spans["Load Visible Masks"]) - statistics.median(spans["core Solid Mask"])
        print(f"ComfyUI: Load Visible Masks on {len(list(masks.glob('*.png')))} masks adds {extra:.0f} ms to the "
              "executor's span (millisecond time stamps)")


def wait_for_prompt(client, url: str, prompt_id: str, timeout: float = 300) -> tuple[float, list]:
    """The executor's span (ms) and the cached node ids of a finished prompt."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = client.http_json(f"{url}/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            messages = dict(entry["status"]["messages"])
            if entry["status"]["status_str"] != "success":
                raise SystemExit(f"the prompt failed: {entry['status']['messages']}")
            span = messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]
            return span, messages.get("execution_cached", {}).get("nodes", [])
        time.sleep(0.01)
    raise SystemExit(f"prompt {prompt_id} did not finish within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masks", type=int, default=1440, help="mask files in the folder (default 1440)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "diffusion_vas_listing",
                        help="where the mask folder is made (reused)")
    parser.add_argument("--comfyui", type=Path, default=os.environ.get("COMFYUI_DIR"),
                        help="a ComfyUI checkout: also time GET /object_info and queueing there")
    parser.add_argument("--comfyui-python", default=os.environ.get("COMFYUI_PYTHON", sys.executable))
    args = parser.parse_args()
    began = time.perf_counter()
    masks = make_masks(args.work / f"masks_{args.masks}", args.masks)
    print(f"mask folder {masks} ready in {time.perf_counter() - began:.1f} s")
    in_process(masks, args.repeats)
    if args.comfyui:
        with_comfyui(args, masks)


if __name__ == "__main__":
    main()
