"""Screenshots of the shipped workflows as loaded in the ComfyUI front end, for the README and as template thumbnails.

Starts ComfyUI (``--cpu`` on loopback, a temporary ``--base-directory`` with this pack linked into
``custom_nodes/`` and, when ``../shared/parity`` has them, the tiny test checkpoints under the names the workflows
use, so model combos hold valid values), opens its front end in headless Chromium, and drives the page over the
Chrome DevTools Protocol: each workflow is loaded with ``app.loadGraphData``, the view is zoomed to fit the graph,
and the page is captured. Per workflow ``<name>.json`` it writes:

* ``<images>/workflow_<slug>.png`` (``Diffusion-VAS scene editing.json`` -> ``scene_editing``): the browser window (default 1920x1080), palette-quantized to stay small;
* ``<name>.jpg`` beside the workflow: a square thumbnail of the graph, which ComfyUI shows in its template browser.

Needs Chromium (Debian: ``apt-get install chromium``), and for this script an interpreter with ``websocket-client``
and ``Pillow`` (a scratch virtual environment will do; neither is a dependency of the pack)::

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/comfy-venv/bin/python \\
        python tools/screenshot_workflows.py ["workflows/Diffusion-VAS scene editing.json" ...]

Front-end settings are set for the capture through ComfyUI's settings API in the temporary user folder only: the
first-run template browser, the minimap and the canvas statistics are off, open workflows are listed in the
sidebar instead of as tabs.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import websocket  # websocket-client
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DIFFUSION_VAS_SHARED", REPO.parent / "shared"))
PACK_FOLDER = "diffusion-vas"
CHECKPOINTS = {  # model folder in ComfyUI -> tiny checkpoint of the tests
    "diffusion_vas/diffusion-vas-amodal-segmentation": SHARED / "parity" / "tiny-amodal-segmentation",
    "diffusion_vas/diffusion-vas-content-completion": SHARED / "parity" / "tiny-content-completion",
}
TINY_DEPTH = SHARED / "parity" / "tiny-depth-anything-v2"
SETTINGS = {
    "Comfy.TutorialCompleted": True,  # no template browser on first start
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,
    "Comfy.Workflow.WorkflowTabsPosition": "Sidebar",
}
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
FIT_MARGIN = 24  # screen pixels around the graph
THUMBNAIL_SIZE = 512

# Zooms the canvas so every node (title bar included) and group fits the canvas panel, and centres it there.
FIT_VIEW_JS = """(margin) => {
  const canvas = app.canvas, rect = canvas.canvas.getBoundingClientRect();
  const panel = (document.querySelector('.graph-canvas-panel') || canvas.canvas).getBoundingClientRect();
  const title = LiteGraph.NODE_TITLE_HEIGHT;
  const boxes = app.graph._nodes.map(n => [n.pos[0], n.pos[1] - title, n.size[0], n.size[1] + title])
    .concat((app.graph._groups || []).map(g => Array.from(g._bounding || g.bounding)));
  const x0 = Math.min(...boxes.map(b => b[0])), y0 = Math.min(...boxes.map(b => b[1]));
  const x1 = Math.max(...boxes.map(b => b[0] + b[2])), y1 = Math.max(...boxes.map(b => b[1] + b[3]));
  const scale = Math.min((panel.width - 2 * margin) / (x1 - x0), (panel.height - 2 * margin) / (y1 - y0));
  const left = panel.left - rect.left + (panel.width - scale * (x1 - x0)) / 2;
  const top = panel.top - rect.top + (panel.height - scale * (y1 - y0)) / 2;
  canvas.ds.scale = scale;
  canvas.ds.offset[0] = left / scale - x0;
  canvas.ds.offset[1] = top / scale - y0;
  canvas.setDirty(true, true);
  return [left + rect.left, top + rect.top, scale * (x1 - x0), scale * (y1 - y0)];
}"""

logger = logging.getLogger("screenshot_workflows")


sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared ComfyUI client beside this file
import comfyui_client as _client  # noqa: E402

free_port, http_json, wait_for, running = _client.free_port, _client.http_json, _client.wait_for, _client.running


def prepare_base(base: Path, workflows: list[Path]) -> None:
    """ComfyUI base directory: the pack in ``custom_nodes/``, the tiny checkpoints (when present) in ``models/``."""
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO, target_is_directory=True)
    links = {name: source for name, source in CHECKPOINTS.items()}
    for path in workflows:
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] == "PseudoDepth":
                links[f"depthanything/{node['widgets_values'][0]}"] = TINY_DEPTH
    for name, source in links.items():
        if source.is_dir() and not (base / "models" / name).exists():
            (base / "models" / name).parent.mkdir(parents=True, exist_ok=True)
            (base / "models" / name).symlink_to(source, target_is_directory=True)
        elif not source.is_dir():
            logger.warning("%s not found: the %s combo will show a value ComfyUI does not list", source, name)


class DevTools:
    """Minimal Chrome DevTools Protocol client for one page."""

    def __init__(self, port: int, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                pages = [t for t in http_json(f"http://127.0.0.1:{port}/json") if t["type"] == "page"]
                if pages:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Chromium's DevTools endpoint did not answer")
            time.sleep(0.5)
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=120,
                                                  suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(expression):
                    return
            except RuntimeError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {expression}")

    def screenshot(self) -> Image.Image:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")

    def close(self) -> None:
        self.socket.close()


def capture(page: DevTools, workflow: Path, settle: float) -> tuple[Image.Image, tuple[float, ...]]:
    """Loads a workflow into the page, fits it to the canvas; returns the screenshot and the graph's screen box."""
    graph = json.loads(workflow.read_text())
    page.evaluate(f"app.loadGraphData({json.dumps(graph)}, true, true, {json.dumps(workflow.stem)}).then(() => 1)")
    page.wait_until(f"app.graph._nodes.length === {len(graph['nodes'])}")
    time.sleep(settle)  # widgets, the video preview and fonts settle
    box = page.evaluate(f"({FIT_VIEW_JS})({FIT_MARGIN})")
    time.sleep(1)
    return page.screenshot(), tuple(box)


def save_png(image: Image.Image, path: Path, max_bytes: int) -> None:
    """Palette PNG (256 colours), scaled down until it is under ``max_bytes``."""
    scale = 1.0
    while True:
        scaled = image if scale == 1 else image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        scaled.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buffer, "PNG", optimize=True)
        if buffer.tell() <= max_bytes or scale < 0.3:
            break
        scale *= 0.9
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    logger.info("%s: %dx%d, %d KB", path, scaled.width, scaled.height, buffer.tell() // 1024)


def save_thumbnail(image: Image.Image, box: tuple[float, ...], path: Path) -> None:
    """The graph cropped from the screenshot, centred on a square of the canvas colour, as JPEG."""
    x, y, w, h = box
    pad = FIT_MARGIN // 2
    graph = image.crop((max(0, int(x) - pad), max(0, int(y) - pad),
                        min(image.width, int(x + w) + pad), min(image.height, int(y + h) + pad)))
    side = max(graph.size)
    square = Image.new("RGB", (side, side), image.getpixel((image.width // 2, image.height - 2)))
    square.paste(graph, ((side - graph.width) // 2, (side - graph.height) // 2))
    square.resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS).save(path, "JPEG", quality=88)
    logger.info("%s: %dx%d", path, THUMBNAIL_SIZE, THUMBNAIL_SIZE)


def image_slug(workflow: Path) -> str:
    """A file-name-friendly name for a workflow's screenshot: the title without the pack prefix, snake case."""
    return workflow.stem.removeprefix("Diffusion-VAS ").strip().lower().replace(" ", "_")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workflows", nargs="*", type=Path, help="UI-format workflows (default: workflows/*.json)")
    parser.add_argument("--comfyui-dir", type=Path, default=os.environ.get("COMFYUI_DIR"),
                        help="ComfyUI checkout (default: $COMFYUI_DIR)")
    parser.add_argument("--comfyui-python", default=os.environ.get("COMFYUI_PYTHON", sys.executable),
                        help="interpreter with ComfyUI's requirements (default: $COMFYUI_PYTHON, else this one)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--images", type=Path, default=REPO / "docs" / "images",
                        help="folder for workflow_<slug>.png")
    parser.add_argument("--window", default="1920x1080", help="browser window size, WIDTHxHEIGHT")
    parser.add_argument("--max-kb", type=int, default=400, help="size limit of each PNG")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to let a loaded graph render")
    parser.add_argument("--no-thumbnails", action="store_true", help="skip the <name>.jpg template thumbnails")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.comfyui_dir is None or not (Path(args.comfyui_dir) / "main.py").is_file():
        parser.error("set --comfyui-dir (or COMFYUI_DIR) to a ComfyUI checkout")
    workflows = [p.resolve() for p in args.workflows] or sorted((REPO / "workflows").glob("*.json"))
    width, height = (int(v) for v in args.window.lower().split("x"))

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="screenshot_workflows_")))
        prepare_base(tmp / "comfyui", workflows)
        port = free_port()
        comfyui = stack.enter_context(running(
            [args.comfyui_python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
             "--base-directory", str(tmp / "comfyui"), "--disable-auto-launch",
             "--database-url", "sqlite:///:memory:"],
            tmp / "comfyui.log", cwd=args.comfyui_dir))
        url = f"http://127.0.0.1:{port}"
        logger.info("starting ComfyUI at %s (log: %s)", url, tmp / "comfyui.log")
        wait_for(f"{url}/object_info", comfyui, 300, "ComfyUI")
        http_json(f"{url}/settings", SETTINGS)

        debug_port = free_port()
        (tmp / "chromium").mkdir()
        browser = stack.enter_context(running(
            [args.chromium, *BROWSER_FLAGS, f"--user-data-dir={tmp / 'chromium'}",
             f"--remote-debugging-port={debug_port}", f"--window-size={width},{height}", "about:blank"],
            tmp / "chromium.log"))
        wait_for(f"http://127.0.0.1:{debug_port}/json/version", browser, 60, "Chromium")
        page = DevTools(debug_port)
        stack.callback(page.close)
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        page.call("Page.navigate", url=url)
        page.wait_until("!!(window.app && app.graph && app.canvas && app.extensionManager)")
        time.sleep(args.settle)

        for workflow in workflows:
            image, box = capture(page, workflow, args.settle)
            save_png(image, args.images / f"workflow_{image_slug(workflow)}.png", args.max_kb * 1024)
            if not args.no_thumbnails:
                save_thumbnail(image, box, workflow.with_suffix(".jpg"))


if __name__ == "__main__":
    main()
