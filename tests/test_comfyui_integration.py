"""End to end in a real ComfyUI: every shipped workflow converted to API format, queued and checked.

Skipped unless ``COMFYUI_DIR`` points at a ComfyUI checkout (``.ci/comfyui-tests`` runs it in every checkout it
finds). ComfyUI runs with ``COMFYUI_PYTHON`` (default: this interpreter; it needs ComfyUI's requirements,
torchvision included) on loopback with ``--cpu`` and a temporary ``--base-directory`` holding only the pack (linked
into ``custom_nodes/``) and the tiny checkpoints (``TINY``: ``../shared/parity``'s, or built by the tests without
it) under the names the workflows use. Sampling steps of the Diffusion-VAS stage nodes are lowered and the stage
nodes and Pseudo-Depth process the example clip at its own size (256x128), to keep it fast; everything else runs
as shipped. Core mask nodes (Invert, Threshold, Feather, Grow, Mask To Image, Join Image with
Alpha) are chained after every MASK output of the pack's nodes. The long-shot workflow runs a second time with
Select Frames taking every 3rd frame (the masks must follow the video's selection).

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/comfy-venv/bin/python pytest tests/test_comfyui_integration.py
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import REPO, TINY

from diffusion_vas.nodes import examples

COMFYUI_DIR = Path(os.environ.get("COMFYUI_DIR", "")).expanduser()
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON", sys.executable)
pytestmark = pytest.mark.skipif(
    not os.environ.get("COMFYUI_DIR") or not (COMFYUI_DIR / "main.py").is_file(),
    reason="set COMFYUI_DIR to a ComfyUI checkout to run the ComfyUI integration test",
)

WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
PACK_FOLDER = "diffusion-vas"  # not a Python identifier: the pack must rely on relative imports only
CHECKPOINTS = {
    "diffusion_vas/diffusion-vas-amodal-segmentation": TINY.stage1,
    "diffusion_vas/diffusion-vas-content-completion": TINY.stage2,
}
TINY_DEPTH = TINY.depth
STAGE_NODES = ("AmodalMaskSVD", "AmodalContentSVD")
TEST_STEPS = 2
TEST_SIZE = dict(width=256, height=128)  # the example clip's own size (a multiple of 64): processed, not enlarged
STARTUP_TIMEOUT, RUN_TIMEOUT = 300, 1500


sys.path.insert(0, str(REPO / "tools"))  # tools/ is not a package: its shared ComfyUI client, by its folder
import comfyui_client as client  # noqa: E402

request = client.http_json


def depth_model_names() -> set[str]:
    names = {"Depth-Anything-V2-Large-hf"}
    for path in WORKFLOWS:
        names |= {n["widgets_values"][0] for n in json.loads(path.read_text())["nodes"] if n["type"] == "PseudoDepth"}
    return names


def prepare_base(base: Path) -> None:
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO, target_is_directory=True)
    for name, source in CHECKPOINTS.items():
        (base / "models" / name).parent.mkdir(parents=True, exist_ok=True)
        (base / "models" / name).symlink_to(source, target_is_directory=True)
    (base / "models" / "depthanything").mkdir(parents=True)
    for name in depth_model_names():
        (base / "models" / "depthanything" / name).symlink_to(TINY_DEPTH, target_is_directory=True)


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    """A running ComfyUI: yields (base URL, base directory, object_info)."""
    for source in [*CHECKPOINTS.values(), TINY_DEPTH]:
        if not source.is_dir():
            pytest.skip(f"tiny checkpoint {source} not found")
    base = tmp_path_factory.mktemp("comfyui")
    prepare_base(base)
    port = client.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory",
               str(base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"]
    with client.running(command, base / "comfyui.log", cwd=COMFYUI_DIR) as process:
        try:
            object_info = client.wait_for(f"{url}/object_info", process, STARTUP_TIMEOUT, "ComfyUI",
                                          base / "comfyui.log")
        except RuntimeError as err:
            pytest.fail(str(err))
        yield url, base, object_info


def to_api(workflow: dict, object_info: dict) -> dict:
    try:
        return client.to_api(workflow, object_info)
    except ValueError as err:
        pytest.fail(str(err))


def run_prompt(url: str, prompt: dict, log: Path) -> dict:
    try:
        queued = request(f"{url}/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
    except urllib.error.HTTPError as err:
        pytest.fail(f"ComfyUI rejected the prompt: {err.read().decode()[:4000]}")
    prompt_id = queued["prompt_id"]
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        history = request(f"{url}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            entry = history[prompt_id]
            if entry["status"]["status_str"] != "success":
                errors = [m for m in entry["status"]["messages"] if m[0] == "execution_error"]
                pytest.fail(f"workflow failed: {json.dumps(errors)[:4000]}\n{log.read_text()[-4000:]}")
            return entry
        time.sleep(2)
    pytest.fail(f"workflow did not finish within {RUN_TIMEOUT} s:\n{log.read_text()[-4000:]}")


def example_clip(workflow: dict) -> Path:
    """The shipped example clip a workflow's ``LoadVideo`` reads (the pack places it in the input folder)."""
    videos = [n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "LoadVideo"]
    assert len(videos) == 1, "the integration test expects one LoadVideo reading an example clip"
    clip = REPO / "example_clips" / videos[0].removeprefix(examples.VIDEO_PREFIX).removesuffix(".mp4")
    assert (clip / "rgb").is_dir(), f"{videos[0]} is not one of the example clips in {REPO / 'example_clips'}"
    return clip


CORE_MASK_NODES = {  # core mask nodes chained after every MASK output of the pack: class -> widget values
    "InvertMask": {}, "ThresholdMask": {"value": 0.5}, "FeatherMask": {"left": 3, "top": 0, "right": 2, "bottom": 1},
    "GrowMask": {"expand": 2, "tapered_corners": True}, "MaskToImage": {},
}
IMAGE_FROM_AN_OPTIONAL_INPUT = ("SelectHypothesis",)  # no frame there when that input is not connected
CHAIN_ID = 10_000  # ids of the chained nodes start here (the shipped workflows' ids are small)


def chain_core_mask_nodes(prompt: dict, object_info: dict, size: tuple[int, int], frames: int) -> dict:
    """Adds, after every MASK output of the pack's nodes in ``prompt``, each of `CORE_MASK_NODES` (previewed through
    core Mask To Image) and core Join Image with Alpha (with the node's own IMAGE output where it has one, else a
    core Empty Image of the clip's ``size`` and ``frames``). Returns ``{(node id, slot): {core class: its preview's node id}}``."""
    chains, next_id = {}, iter(range(CHAIN_ID, CHAIN_ID + 10_000))

    def add(class_type: str, **inputs) -> str:
        node_id = str(next(next_id))
        prompt[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    for node_id, node in list(prompt.items()):
        outputs = object_info[node["class_type"]]["output"]
        if not object_info[node["class_type"]].get("python_module", "").startswith("custom_nodes"):
            continue  # core's own nodes
        for slot in [i for i, kind in enumerate(outputs) if kind == "MASK"]:
            mask, previews = [node_id, slot], {}
            for class_type, widgets in CORE_MASK_NODES.items():
                made = add(class_type, mask=mask, **widgets)
                image = add("MaskToImage", mask=[made, 0]) if class_type != "MaskToImage" else made
                previews[class_type] = add("PreviewImage", images=[image, 0])
            if "IMAGE" in outputs and node["class_type"] not in IMAGE_FROM_AN_OPTIONAL_INPUT:
                image = [node_id, outputs.index("IMAGE")]
            else:
                image = [add("EmptyImage", width=size[0], height=size[1], batch_size=frames, color=0), 0]
            previews["JoinImageWithAlpha"] = add("PreviewImage", images=[add("JoinImageWithAlpha", image=image,
                                                                             alpha=mask), 0])
            chains[(node_id, slot)] = previews
    return chains


def check_core_mask_nodes(chains: dict, entry: dict, base: Path, size: tuple[int, int], frames: int) -> None:
    """Every core mask node ran on every MASK output: each preview has the MASK's frames (a multiple of the clip's
    ``frames``) at the footage ``size``; Invert is 1 - the mask and Threshold at 0.5 the mask itself for masks
    of 0 and 1 (to the 8-bit rounding of the previews)."""
    def images(preview_id: str) -> list[np.ndarray]:
        items = entry["outputs"][preview_id]["images"]
        return [np.asarray(Image.open(base / "temp" / item["subfolder"] / item["filename"])) for item in items]

    assert chains, "the workflow has no MASK output of the pack"
    for (node_id, slot), previews in chains.items():
        mask = images(previews["MaskToImage"])
        what = f"node {node_id} MASK output {slot}"
        assert len(mask) % frames == 0 and mask[0].shape[:2] == (size[1], size[0]), (
            f"{what}: {len(mask)} frames of {mask[0].shape[1]}x{mask[0].shape[0]}; the clip is {frames} x {size}")
        for class_type, preview_id in previews.items():
            made = images(preview_id)
            if class_type == "JoinImageWithAlpha":  # RGBA at the image's size, the mask resized to it (as many
                # frames as the shorter of the two has in 0.8.0, the longer in 0.3x)
                assert made and made[0].shape[2] == 4, f"{what} -> {class_type}"
                continue
            assert len(made) == len(mask) and made[0].shape[:2] == mask[0].shape[:2], f"{what} -> {class_type}"
        inverted = images(previews["InvertMask"])
        assert all(np.abs(a.astype(int) + b.astype(int) - 255).max() <= 1 for a, b in zip(mask, inverted)), what
        if all(set(np.unique(m)) <= {0, 255} for m in mask):
            assert all(np.array_equal(a, b) for a, b in zip(mask, images(previews["ThresholdMask"]))), what


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_runs_in_comfyui(comfyui, path, tmp_path):
    url, base, object_info = comfyui
    workflow = json.loads(path.read_text())
    prompt = to_api(workflow, object_info)
    for node in prompt.values():
        if node["class_type"] in STAGE_NODES:
            node["inputs"]["steps"] = TEST_STEPS
        if node["class_type"] in (*STAGE_NODES, "PseudoDepth"):
            node["inputs"].update(TEST_SIZE)
    clip = example_clip(workflow)
    rgb = sorted((clip / "rgb").glob("*.png"))
    with Image.open(rgb[0]) as first:
        size, frames = first.size, len(rgb)
    output_nodes = [node_id for node_id, node in prompt.items()
                    if node["class_type"] in ("SaveImage", "PreviewImage", "SaveVideo")]
    chains = chain_core_mask_nodes(prompt, object_info, size, frames)
    entry = run_prompt(url, prompt, base / "comfyui.log")
    check_core_mask_nodes(chains, entry, base, size, frames)

    assert output_nodes and set(output_nodes) <= set(entry["outputs"]), "every output node must report results"
    for node_id in output_nodes:
        node, results = prompt[node_id], entry["outputs"][node_id]
        files = [base / ("output" if item["type"] == "output" else "temp") / item["subfolder"] / item["filename"]
                 for key in ("images", "videos") for item in results.get(key, [])]
        assert files and all(f.is_file() and f.stat().st_size > 0 for f in files), node_id
        if node["class_type"] == "SaveVideo":
            check_video(files[0], size, frames)
        elif node["class_type"] == "SaveImage":
            assert len(files) % frames == 0, f"node {node_id} saved {len(files)} frames for a {frames}-frame clip"
            for file in files:
                with Image.open(file) as image:
                    assert image.size == size, f"{file} is {image.size}, the clip is {size}"

    if path.name == "Diffusion-VAS amodal segmentation.json":
        check_amodal_masks(base / "output" / "diffusion_vas", clip / "modal")
    if path.name == "Diffusion-VAS scene editing.json":
        check_scene_edits(workflow, entry, base, clip / "occluder", size, frames)
    if path.name == "Diffusion-VAS hypotheses.json":
        check_hypotheses(workflow, entry, base, clip / "modal", frames)
    if path.name == LONG_SHOT:
        check_long_shot(prompt, entry, base, size, range(frames), examples.VIDEO_FPS, tmp_path)


LONG_SHOT = "Diffusion-VAS long shot.json"


def test_long_shot_takes_every_nth_frame(comfyui, tmp_path):
    """The long-shot workflow with Select Frames at every_nth 3 (what 24 fps footage takes): the example's mask
    folder has one mask per frame of the video file, so Load Visible Masks must follow the video's selection; every
    output has the selected frames at the source rate / 3. At a small processing size (128x64): the frame
    selection is what is checked."""
    url, base, object_info = comfyui
    workflow = json.loads((REPO / "workflows" / LONG_SHOT).read_text())
    prompt = to_api(workflow, object_info)
    for node in prompt.values():
        if node["class_type"] == "SelectVideoFrames":
            node["inputs"]["every_nth"] = 3
        if node["class_type"] in STAGE_NODES:
            node["inputs"]["steps"] = TEST_STEPS
        if node["class_type"] in (*STAGE_NODES, "PseudoDepth"):
            node["inputs"].update(width=128, height=64)
    rgb = sorted((example_clip(workflow) / "rgb").glob("*.png"))
    with Image.open(rgb[0]) as first:
        size = first.size
    chosen = len(range(0, len(rgb), 3))
    chains = chain_core_mask_nodes(prompt, object_info, size, chosen)
    entry = run_prompt(url, prompt, base / "comfyui.log")
    check_core_mask_nodes(chains, entry, base, size, chosen)
    check_long_shot(prompt, entry, base, size, range(0, len(rgb), 3), examples.VIDEO_FPS / 3, tmp_path)


def decode_video(file: Path, folder: Path) -> tuple[np.ndarray, float]:
    """Every frame of a video ``[T, H, W, 3]`` uint8 and its frame rate, decoded with ComfyUI's interpreter."""
    target = folder / f"{file.stem}.npy"
    script = ("import av, numpy, sys\n"
              "with av.open(sys.argv[1]) as c:\n"
              "    frames = numpy.stack([f.to_ndarray(format='rgb24') for f in c.decode(video=0)])\n"
              "    print(float(c.streams.video[0].average_rate))\n"
              "numpy.save(sys.argv[2], frames)")
    result = subprocess.run([COMFYUI_PYTHON, "-c", script, str(file), str(target)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return np.load(target), float(result.stdout.strip())


def check_long_shot(prompt: dict, entry: dict, base: Path, size: tuple[int, int], chosen: range, fps: float,
                    scratch: Path) -> None:
    """Both saved videos (completed object, reveal) have the selected frames at the clip's size and the selected
    rate; the preview of the edit (lossless PNG) has up to 16 frames spread over the shot (every one for a short
    clip), each the frame of the saved edit at its place (the closest of all the video's frames, H.264 aside)."""
    def source(node_id: str, name: str) -> dict:
        return prompt[prompt[node_id]["inputs"][name][0]]

    def files(node_id: str, key: str) -> list[Path]:
        return [base / ("output" if item["type"] == "output" else "temp") / item["subfolder"] / item["filename"]
                for item in entry["outputs"][node_id].get(key, [])]

    saves = {source(i, "video")["class_type"]: files(i, "images") + files(i, "videos")
             for i, node in prompt.items() if node["class_type"] == "SaveVideo"}
    assert set(saves) == {"AmodalContentSVD", "CompositeEdit"}, f"saved videos of {sorted(saves)}"
    previews = [files(i, "images") for i, node in prompt.items()
                if node["class_type"] == "PreviewImage" and source(i, "images")["class_type"] == "CompositeEdit"]
    assert len(previews) == 1, "one preview of the edit"
    videos = {}
    for kind, (file,) in saves.items():
        videos[kind], rate = decode_video(file, scratch)
        assert videos[kind].shape == (len(chosen), size[1], size[0], 3), f"{file.name}: {videos[kind].shape}"
        assert rate == pytest.approx(fps, rel=1e-3), f"{file.name}: {rate} fps, the selection is {fps} fps"
    count = len(chosen)
    shown = sorted({round(i * (count - 1) / max(min(count, 16) - 1, 1)) for i in range(min(count, 16))})
    assert len(previews[0]) == len(shown), f"{len(previews[0])} preview frames of a {count}-frame shot"
    edit = videos["CompositeEdit"].astype(np.int16)
    for index, file in zip(shown, previews[0]):
        with Image.open(file) as image:
            assert image.size == size, f"{file.name} is {image.size}, the clip is {size}"
            frame = np.asarray(image.convert("RGB")).astype(np.int16)
        distance = np.abs(edit - frame).mean(axis=(1, 2, 3))
        assert distance.argmin() == index, f"{file.name}: closest to edit frame {distance.argmin()}, not {index}"


def check_hypotheses(workflow: dict, entry: dict, base: Path, modal_folder: Path, frames: int) -> None:
    """Three sample previews of one frame each per input frame; the saved agreement map takes only the values
    0, 1/3, 2/3 and 1 (three samples voting) and is 1 on every visible pixel (every sample keeps them)."""
    samples = [n for n in workflow["nodes"] if n["type"] == "PreviewImage" and n.get("title", "").startswith("Preview sample")]
    assert len(samples) == 3
    for node in samples:
        assert len(entry["outputs"][str(node["id"])]["images"]) == frames, node["title"]
    saved = sorted((base / "output" / "diffusion_vas").glob("agreement_*.png"))
    modal = sorted(modal_folder.glob("*.png"))
    assert len(saved) == len(modal) == frames
    for agreement_file, modal_file in zip(saved, modal):
        votes = np.asarray(Image.open(agreement_file).convert("L")).astype(float) * 3 / 255
        assert np.abs(votes - votes.round()).max() < 0.05, f"{agreement_file.name} is not a 3-sample vote"
        visible = np.asarray(Image.open(modal_file).convert("L")) > 127
        assert (votes[visible].round() == 3).all(), f"{agreement_file.name} is below 1 on visible pixels"


def check_video(file: Path, size: tuple[int, int], frames: int) -> None:
    """Decodes the video with ComfyUI's interpreter (ComfyUI always has PyAV); checks frame count and size."""
    script = ("import av, json, sys\n"
              "with av.open(sys.argv[1]) as c:\n"
              "    f = list(c.decode(video=0))\n"
              "print(json.dumps([len(f), f[0].width, f[0].height]))")
    result = subprocess.run([COMFYUI_PYTHON, "-c", script, str(file)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == [frames, *size], f"{file.name}: (frames, width, height) {result.stdout}"


def check_amodal_masks(folder: Path, modal_folder: Path) -> None:
    """The saved amodal masks cover every visible pixel of the example's modal masks."""
    saved = sorted(folder.glob("amodal_mask_*.png"))
    modal = sorted(modal_folder.glob("*.png"))
    assert len(saved) == len(modal)
    for mask_file, modal_file in zip(saved, modal):
        amodal = np.asarray(Image.open(mask_file).convert("L")) > 127
        visible = np.asarray(Image.open(modal_file).convert("L")) > 127
        assert not (visible & ~amodal).any(), f"{mask_file.name} misses visible pixels"


def edit_previews(workflow: dict, entry: dict, base: Path) -> dict[str, tuple[dict, list[Path]]]:
    """The ``PreviewImage`` nodes fed by a ``CompositeEdit``: mode -> (the CompositeEdit node, its preview files)."""
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}
    previews = {}
    for node in workflow["nodes"]:
        source = nodes[links[node["inputs"][0]["link"]][1]] if node["type"] == "PreviewImage" else None
        if source is not None and source["type"] == "CompositeEdit":
            files = [base / "temp" / item["subfolder"] / item["filename"]
                     for item in entry["outputs"][str(node["id"])]["images"]]
            previews[source["widgets_values"][0]] = (source, files)
    return previews


def check_scene_edits(workflow: dict, entry: dict, base: Path, occluder_folder: Path, size, frames: int) -> None:
    """The ``reveal`` and ``remove_occluder`` previews (lossless PNG) have one frame per input frame, at its size;
    they are identical outside the example's occluder and differ inside it in every frame (it is repainted).

    Both edits draw the same object with the same ``feather`` (as shipped), so only the occluder's alpha can set them
    apart; ``feather`` grows it by ``2 * ceil(feather)`` pixels (outward growth, then the blur's kernel radius)."""
    edits = edit_previews(workflow, entry, base)
    assert set(edits) == {"reveal", "remove_occluder"}, f"previews of the edits: {sorted(edits)}"
    (reveal_node, revealed), (remove_node, removed) = edits["reveal"], edits["remove_occluder"]
    feather = remove_node["widgets_values"][2]
    assert reveal_node["widgets_values"][2] == feather, "the check assumes both edits use the same feather"
    occluders = sorted(occluder_folder.glob("*.png"))
    assert len(revealed) == len(removed) == len(occluders) == frames
    grow = ImageFilter.MaxFilter(4 * math.ceil(feather) + 1)
    for reveal_file, remove_file, occluder_file in zip(revealed, removed, occluders):
        with Image.open(reveal_file) as a, Image.open(remove_file) as b, Image.open(occluder_file) as o:
            assert a.size == b.size == size, f"{reveal_file.name} {a.size}, {remove_file.name} {b.size}, clip {size}"
            changed = (np.asarray(a.convert("RGB")) != np.asarray(b.convert("RGB"))).any(axis=-1)
            occluder = np.asarray(o.convert("L").filter(grow)) > 127
        assert not (changed & ~occluder).any(), f"{remove_file.name} changed pixels outside {occluder_file.name}"
        assert changed.any(), f"{remove_file.name} left the occluder of {occluder_file.name} as it was"
