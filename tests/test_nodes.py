"""The loader, mask and stage nodes called as ComfyUI calls them (class -> FUNCTION with keyword inputs), on the tiny
checkpoints of ``../shared/parity``; reference parity through the nodes; the shipped workflows' structure."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import PARITY, REPO, TINY

from diffusion_vas import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from diffusion_vas.nodes import adapters, examples, loader, masks, stages
from diffusion_vas.models import CONTENT_COMPLETION
from diffusion_vas.models.host import policy
from diffusion_vas.models.host.policy import MODELS_ENV

STAGE1, STAGE2 = TINY.stage1, TINY.stage2
MY_NODES = ("DiffusionVASLoader", "LoadModalMasks", "AmodalMaskSVD", "AmodalContentSVD", "SelectHypothesis")
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
FAST = dict(steps=2, width=128, height=64)


def declared_inputs(cls) -> dict:
    spec = cls.INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}


def run(cls, **inputs):
    """Calls a node the way ComfyUI's executor does (under ``torch.inference_mode()``), after checking every input
    is declared."""
    unknown = set(inputs) - set(declared_inputs(cls))
    assert not unknown, f"{cls.__name__} does not declare {unknown}"
    with torch.inference_mode():
        return getattr(cls(), cls.FUNCTION)(**inputs)


def as_image(frames: torch.Tensor) -> torch.Tensor:
    """``[T, H, W]`` or ``[T, H, W, 3]`` -> ComfyUI IMAGE ``[T, H, W, 3]`` float32."""
    frames = frames.float()
    return (frames[..., None].expand(*frames.shape, 3) if frames.ndim == 3 else frames).contiguous()


def normalized(depth: torch.Tensor) -> torch.Tensor:
    return (depth - depth.min()) / (depth.max() - depth.min())


class RecordingHost(policy.Host):
    """Records progress updates (stands in for ComfyUI's progress bar)."""

    def __init__(self):
        self.calls = []

    def progress(self, total, label):
        return lambda done, _total=None: self.calls.append((label, done, total))


@pytest.fixture()
def progress(monkeypatch):
    host = RecordingHost()
    monkeypatch.setattr(policy, "_host", host)
    return host.calls


@pytest.fixture(scope="module")
def case_inputs():
    """A 25-frame 90x172 clip as ComfyUI types: IMAGE frames, MASK modal masks, depth IMAGE in 0..1.

    The parity case when ../shared is there; otherwise the shipped example clip resized to the same size.
    """
    if PARITY.is_dir():
        from safetensors.torch import load_file

        case = load_file(str(PARITY / "case.safetensors"))
        images, modal, depth = case["input/rgb_u8"], case["input/modal_mask_u8"], case["input/depth_raw"]
    else:
        from diffusion_vas.models.io.frame_source import read_frames
        from diffusion_vas.models.stages.conditions import pil_resize

        clip = REPO / "example_clips" / "synthetic_occlusion"
        images = pil_resize(read_frames(clip / "rgb"), (90, 172))
        modal = pil_resize(read_frames(clip / "modal")[..., 0], (90, 172), Image.NEAREST)
        depth = pil_resize(read_frames(clip / "depth")[..., 0], (90, 172)).float()
    return dict(images=images.float() / 255, modal=(modal > 128).float(), depth=as_image(normalized(depth)))


@pytest.fixture(scope="module")
def model1():
    return run(loader.DiffusionVASLoader, model=str(STAGE1), precision="fp32")[0]


@pytest.fixture(scope="module")
def model2():
    return run(loader.DiffusionVASLoader, model=str(STAGE2), precision="auto")[0]


# -- node metadata ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MY_NODES)
def test_classic_node_api(name):
    cls = NODE_CLASS_MAPPINGS[name]
    assert name in NODE_DISPLAY_NAME_MAPPINGS and cls.CATEGORY == "Diffusion-VAS" and cls.DESCRIPTION
    assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)
    inputs = declared_inputs(cls)
    assert all(options.get("tooltip") for _, options in inputs.values()), "every input needs a tooltip"
    parameters = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
    takes_widgets = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert set(inputs) <= set(parameters) or takes_widgets, "the function must accept every input"
    required = cls.INPUT_TYPES()["required"]
    assert all(p.default is inspect.Parameter.empty for n, p in parameters.items() if n in required and
               required[n][0] not in WIDGET_TYPES and not isinstance(required[n][0], list))


def test_contract_inputs_and_defaults():
    """Node and input names are a contract with saved workflows."""
    assert list(declared_inputs(loader.DiffusionVASLoader)) == ["model", "precision"]
    mask_inputs = declared_inputs(stages.AmodalMaskSVD)
    assert list(mask_inputs)[:8] == ["model", "modal_masks", "depth", "seed", "steps", "guidance_scale", "width",
                                     "height"]
    content_inputs = declared_inputs(stages.AmodalContentSVD)
    assert list(content_inputs)[:9] == ["model", "images", "modal_masks", "amodal_masks", "seed", "steps",
                                        "guidance_scale", "width", "height"]
    for spec in (mask_inputs, content_inputs):
        assert {k: spec[k][1]["default"] for k in ("steps", "guidance_scale", "width", "height")} == dict(
            steps=25, guidance_scale=1.5, width=512, height=256)
    assert stages.AmodalMaskSVD.RETURN_NAMES[0] == "amodal_masks" and stages.AmodalMaskSVD.RETURN_TYPES[0] == "MASK"
    assert stages.AmodalContentSVD.RETURN_NAMES[0] == "amodal_rgb"
    assert stages.AmodalContentSVD.RETURN_TYPES == ("IMAGE", "MASK", "VIDEO")
    assert loader.DiffusionVASLoader.RETURN_TYPES == ("DIFFUSION_VAS_MODEL",)
    assert mask_inputs["threshold"][1]["default"] == 600


# -- parity through the nodes ----------------------------------------------------------------------------------------

def test_reference_parity_through_the_nodes(parity_case, case_inputs, model1, model2, progress):
    meta = parity_case["__metadata__"]
    height, width = json.loads(meta["res"])
    steps = int(meta["steps"])
    params = json.loads(meta["params"])
    sampling = dict(steps=steps, guidance_scale=params["min_guidance_scale"], width=width, height=height,
                    fps=params["fps"], motion_bucket_id=params["motion_bucket_id"],
                    noise_aug_strength=params["noise_aug_strength"], decode_chunk_size=params["decode_chunk_size"])

    amodal, probability, _ = run(stages.AmodalMaskSVD, model=model1, modal_masks=case_inputs["modal"],
                              depth=case_inputs["depth"], seed=int(meta["seed_stage1"]), mask_upscale="reference",
                              **sampling)
    expected = parity_case["stage1/amodal_mask_orig"].bool() | (parity_case["input/modal_mask_u8"] > 128)
    assert amodal.shape == expected.shape and amodal.dtype == torch.float32
    iou = (amodal.bool() & expected).sum().item() / (amodal.bool() | expected).sum().item()
    assert iou >= 0.999, iou
    assert probability.shape == (*expected.shape, 3) and 0 <= probability.min() and probability.max() <= 1
    assert bool((amodal.bool() | ~(case_inputs["modal"] > 0.5)).all()), "every visible pixel is in the amodal mask"

    rgb, alpha, _ = run(stages.AmodalContentSVD, model=model2, images=case_inputs["images"],
                     modal_masks=case_inputs["modal"], amodal_masks=amodal, seed=int(meta["seed_stage2"]),
                     keep_visible_pixels=False, **sampling)
    reference = parity_case["stage2/frames_orig_u8"].float() / 255
    assert rgb.shape == reference.shape
    error = (rgb - reference).abs().mean().item()
    assert error <= 0.01, error
    assert torch.equal(alpha.bool(), amodal.bool())
    logging.getLogger(__name__).info("node parity: IoU %.6f, mean |RGB diff| %.5f", iou, error)

    per_stage = {label: [c for c in progress if c[0] == label] for label in ("AmodalMaskSVD", "AmodalContentSVD")}
    assert all(len(calls) == steps and calls[-1][1:] == (steps, steps) for calls in per_stage.values())


# -- long clips, several objects -------------------------------------------------------------------------------------

def test_sixty_frame_clip(case_inputs, model1, model2, progress):
    order = (list(range(25)) + list(range(24, -1, -1)) + list(range(25)))[:60]
    images, modal, depth = (case_inputs[k][order] for k in ("images", "modal", "depth"))
    amodal, probability, _ = run(stages.AmodalMaskSVD, model=model1, modal_masks=modal, depth=depth, seed=1, **FAST)
    assert amodal.shape == modal.shape and probability.shape == (60, 90, 172, 3)
    assert bool((amodal.bool() | ~(modal > 0.5)).all())
    rgb, alpha, _ = run(stages.AmodalContentSVD, model=model2, images=images, modal_masks=modal, amodal_masks=amodal,
                     seed=2, decode_chunk_size=14, **FAST)
    assert rgb.shape == images.shape and alpha.shape == modal.shape
    assert torch.isfinite(rgb).all() and 0 <= rgb.min() and rgb.max() <= 1
    assert not torch.equal(rgb, images), "the result must not be the input"
    assert len(progress) == 2 * FAST["steps"]


def test_several_objects_stacked_object_major(case_inputs, model1, model2):
    frames = 8
    images, depth = case_inputs["images"][:frames], case_inputs["depth"][:frames]
    first = case_inputs["modal"][:frames]
    second = torch.roll(first, shifts=40, dims=2)
    both = torch.cat([first, second])  # object 0's frames, then object 1's
    amodal, probability, _ = run(stages.AmodalMaskSVD, model=model1, modal_masks=both, depth=depth, seed=5, **FAST)
    assert amodal.shape == (2 * frames, 90, 172) and probability.shape == (2 * frames, 90, 172, 3)
    alone, *_ = run(stages.AmodalMaskSVD, model=model1, modal_masks=first, depth=depth, seed=5, **FAST)
    assert torch.equal(amodal[:frames], alone), "an object's result does not depend on the others"
    assert bool((amodal.bool() | ~(both > 0.5)).all())

    rgb, alpha, _ = run(stages.AmodalContentSVD, model=model2, images=images, modal_masks=both, amodal_masks=amodal,
                     seed=5, object_batch_size=2, **FAST)
    assert rgb.shape == (2 * frames, 90, 172, 3) and alpha.shape == (2 * frames, 90, 172)
    assert not torch.equal(rgb[:frames], rgb[frames:])


def test_sam2_style_mask_layouts():
    base = (torch.rand(6, 10, 12) > 0.5).float()
    for layout in (base[..., None], base[:, None], (base * 255).to(torch.uint8), base.bool(), base.view(2, 3, 10, 12)):
        split = adapters.split_objects(layout, 3, "modal_masks", "images")
        assert split.shape == (2, 3, 10, 12) and torch.equal(split, base.view(2, 3, 10, 12))
    assert adapters.split_objects(base[0], 1, "m", "images").shape == (1, 1, 10, 12)
    with pytest.raises(ValueError, match="not a multiple of the 4 frames of images"):
        adapters.split_objects(base, 4, "modal_masks", "images")


# -- bad inputs ------------------------------------------------------------------------------------------------------

def test_stage_input_errors(case_inputs, model1, model2):
    modal, depth, images = case_inputs["modal"][:4], case_inputs["depth"][:4], case_inputs["images"][:4]
    mask_node = dict(model=model1, modal_masks=modal, depth=depth, **FAST)
    content_node = dict(model=model2, images=images, modal_masks=modal, amodal_masks=modal, **FAST)
    cases = [
        (stages.AmodalMaskSVD, dict(mask_node, depth=case_inputs["depth"][:3]), "has 4 frames but depth has 3"),
        (stages.AmodalMaskSVD, dict(mask_node, depth=depth[0]), "frames but depth has|expected an IMAGE"),
        (stages.AmodalMaskSVD, dict(mask_node, depth=depth[None]), r"expected an IMAGE"),
        (stages.AmodalMaskSVD, dict(mask_node, depth=depth * float("nan")), "NaN"),
        (stages.AmodalMaskSVD, dict(mask_node, modal_masks=modal.masked_fill(modal > 0, float("inf"))), "NaN or inf"),
        (stages.AmodalMaskSVD, dict(mask_node, width=100), "multiple of 64 for the real model"),
        (stages.AmodalMaskSVD, dict(mask_node, model=model2), "diffusion-vas-amodal-segmentation"),
        (stages.AmodalContentSVD, dict(content_node, model=model1), "diffusion-vas-content-completion"),
        (stages.AmodalContentSVD, dict(content_node, amodal_masks=modal[:3]), "amodal_masks has 3 frames but images has 4"),
        (stages.AmodalContentSVD, dict(content_node, modal_masks=torch.cat([modal, modal]),
                                       amodal_masks=torch.cat([modal, modal, modal])), "holds 3 object"),
        (stages.AmodalContentSVD, dict(content_node, modal_masks=modal[:, :45]), "resize the masks"),
        (stages.AmodalContentSVD, dict(content_node, images=images[..., :2]), "3 colour channels"),
        (stages.AmodalContentSVD, dict(content_node, images=images[0]), "expected an IMAGE"),
        (stages.AmodalContentSVD, dict(content_node, images=images * float("nan")), "NaN"),
        (stages.AmodalContentSVD, dict(content_node, height=60), "multiples of 8"),
    ]
    for cls, inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            run(cls, **inputs)


# -- loader ----------------------------------------------------------------------------------------------------------

@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    (tmp_path / loader.MODEL_KIND).mkdir()
    return tmp_path / loader.MODEL_KIND


def test_loader_lists_published_and_local_checkpoints(models_dir, model1):
    (models_dir / "my-vas-segmentation").symlink_to(STAGE1, target_is_directory=True)
    (models_dir / "not-a-checkpoint").mkdir()
    choices, options = loader.DiffusionVASLoader.INPUT_TYPES()["required"]["model"]
    assert choices == [*loader.PUBLISHED, "my-vas-segmentation"] and options["default"] in choices
    assert loader.DiffusionVASLoader.VALIDATE_INPUTS("my-vas-segmentation") is True
    assert loader.DiffusionVASLoader.VALIDATE_INPUTS(str(STAGE2)) is True
    assert "neither" in loader.DiffusionVASLoader.VALIDATE_INPUTS("missing-model")
    again = run(loader.DiffusionVASLoader, model="my-vas-segmentation", precision="fp32")[0]
    assert again is model1, "models are cached by (path, dtype)"
    assert model1.stage == "amodal" and again.pipeline.dtype == torch.float32


def test_loader_errors(models_dir, monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        run(loader.DiffusionVASLoader, model=str(tmp_path / "nowhere"), precision="auto")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty is not a Diffusion-VAS checkpoint folder"):
        run(loader.DiffusionVASLoader, model=str(tmp_path / "empty"), precision="auto")
    with pytest.raises(FileNotFoundError, match="diffusion-vas-amodal-segmentation"):
        run(loader.DiffusionVASLoader, model="unknown-model", precision="auto")
    with pytest.raises(ValueError, match="precision"):
        run(loader.DiffusionVASLoader, model=str(STAGE1), precision="fp8")

    def offline(repo_id, **kwargs):
        raise OSError(f"cannot reach the Hub for {repo_id}")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(RuntimeError, match="hf download kaihuac/diffusion-vas-content-completion"):
        run(loader.DiffusionVASLoader, model=CONTENT_COMPLETION, precision="auto")


# -- LoadModalMasks ---------------------------------------------------------------------------------------------------

def label_frames(frames=5, height=12, width=16):
    labels = np.zeros((frames, height, width), np.uint8)
    for t in range(frames):
        labels[t, 2:6, t:t + 4] = 1
        labels[t, 7:11, 8:12] = 2
    return labels


def save_palette(folder: Path, labels):
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(labels):
        image = Image.new("P", (frame.shape[1], frame.shape[0]))
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
        image.putdata(frame.flatten().tolist())
        image.save(folder / f"{t:05d}.png")


def load_masks(**inputs):
    return run(masks.LoadModalMasks, **inputs)[0]


def test_load_binary_masks_range_and_resize(tmp_path, monkeypatch):
    frames = (np.arange(12)[:, None, None] == np.arange(12)[None, :, None]) * np.ones((12, 12, 20), bool)
    folder = tmp_path / "masks"
    folder.mkdir()
    for t, frame in enumerate(frames):  # names that sort wrongly as text: frame_10 after frame_1
        Image.fromarray(frame.astype(np.uint8) * 255).save(folder / f"frame_{t}.png")
    (folder / "notes.txt").write_text("not a mask")
    loaded = load_masks(folder=str(folder))
    assert loaded.shape == (12, 12, 20) and loaded.dtype == torch.float32
    assert torch.equal(loaded, torch.from_numpy(frames).float())

    monkeypatch.chdir(tmp_path)
    part = load_masks(folder="masks", start_frame=2, frame_count=3, every_nth=3)
    assert torch.equal(part, torch.from_numpy(frames[[2, 5, 8]]).float())
    resized = load_masks(folder="masks", frame_count=2, reference_images=torch.zeros(2, 24, 40, 3))
    assert resized.shape == (2, 24, 40) and torch.equal(resized[:, ::2, ::2], loaded[:2])

    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.fromarray(np.stack([frames[0] * 200, frames[0] * 0, frames[0] * 0], -1).astype(np.uint8)).save(rgb / "a.png")
    assert torch.equal(load_masks(folder=str(rgb))[0], loaded[0]), "a red object on black is a binary mask"


def test_load_palette_and_label_masks(tmp_path):
    labels = label_frames()
    save_palette(tmp_path / "palette", labels)
    for object_id in (1, 2):
        assert torch.equal(load_masks(folder=str(tmp_path / "palette"), object_id=object_id),
                           torch.from_numpy(labels == object_id).float())
    assert torch.equal(load_masks(folder=str(tmp_path / "palette")), torch.from_numpy(labels > 0).float())
    with pytest.raises(ValueError, match=r"ids present: \[1, 2\]"):
        load_masks(folder=str(tmp_path / "palette"), object_id=3)

    (tmp_path / "gray").mkdir()
    (tmp_path / "sixteen").mkdir()
    for t, frame in enumerate(labels):
        Image.fromarray(frame).save(tmp_path / "gray" / f"{t}.png")
        Image.fromarray((frame.astype(np.uint16) * 300)).save(tmp_path / "sixteen" / f"{t}.png")
    assert torch.equal(load_masks(folder=str(tmp_path / "gray"), object_id=2), torch.from_numpy(labels == 2).float())
    assert torch.equal(load_masks(folder=str(tmp_path / "sixteen"), object_id=600),
                       torch.from_numpy(labels == 2).float())


def test_load_masks_errors_and_change_detection(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="has no mask images"):
        load_masks(folder=str(empty))
    with pytest.raises(ValueError, match="does not exist"):
        load_masks(folder=str(tmp_path / "missing"))

    folder = tmp_path / "binary"
    folder.mkdir()
    for t in range(3):
        Image.fromarray(np.full((8, 10), 255 * (t % 2), np.uint8)).save(folder / f"{t}.png")
    with pytest.raises(ValueError, match="start 5 is past the last of the 3 masks"):
        load_masks(folder=str(folder), start_frame=5)
    with pytest.raises(ValueError, match="binary"):
        load_masks(folder=str(folder), object_id=2)

    before = masks.LoadModalMasks.IS_CHANGED(folder=str(folder), object_id=0, start_frame=0, frame_count=0,
                                             every_nth=1)
    Image.fromarray(np.full((8, 10), 255, np.uint8)).save(folder / "0.png")
    after = masks.LoadModalMasks.IS_CHANGED(folder=str(folder), object_id=0, start_frame=0, frame_count=0,
                                            every_nth=1)
    assert before != after

    Image.fromarray(np.zeros((9, 10), np.uint8)).save(folder / "3.png")
    with pytest.raises(ValueError, match=r"3.png is 10x9 but 0.png is 10x8"):
        load_masks(folder=str(folder))
    (folder / "4.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"Cannot read mask file .*4.png"):
        load_masks(folder=str(folder), start_frame=4)


# -- example clip and shipped workflows ------------------------------------------------------------------------------

class InputFolderHost(policy.Host):
    def __init__(self, folder):
        self.folder = folder

    def input_directory(self):
        return self.folder


def test_example_clip_is_installed_into_the_input_folder(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(policy, "_host", InputFolderHost(tmp_path))
    with caplog.at_level(logging.WARNING):
        examples.install_examples()  # what loading the pack inside ComfyUI does (nodes/__init__.py)
    clip = tmp_path / examples.INPUT_SUBFOLDER / "synthetic_occlusion"
    assert sorted(p.name for p in (clip / "modal").iterdir()) == sorted(
        p.name for p in (examples.EXAMPLES_DIR / "synthetic_occlusion" / "modal").iterdir())
    video = tmp_path / examples.example_video_name("synthetic_occlusion")
    try:
        import av  # noqa: F401  (ComfyUI installs PyAV; plain environments may lack it)
    except ImportError:
        assert not video.exists() and "could not place the example clip" in caplog.text
    else:
        assert video.stat().st_size > 0

    loaded = load_masks(folder=masks.EXAMPLE_MASKS)
    assert loaded.shape == (25, 128, 256) and loaded.max() == 1


def ui_widgets(cls) -> list[str]:
    """Widget inputs in the order the UI stores them, with the extra control value after a seed."""
    names = []
    for name, (kind, options) in declared_inputs(cls).items():
        if isinstance(kind, list) or kind in WIDGET_TYPES:
            names.append(name)
            if name == "seed" or options.get("control_after_generate"):
                names.append(f"{name}:control")
    return names


@pytest.mark.parametrize("path", sorted((REPO / "workflows").glob("*.json")), ids=lambda p: p.name)
def test_shipped_workflow_structure(path):
    workflow = json.loads(path.read_text())
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for link_id, source, source_slot, target, target_slot, kind in workflow["links"]:
        assert nodes[source]["outputs"][source_slot]["type"] == kind
        assert link_id in nodes[source]["outputs"][source_slot]["links"]
        target_input = nodes[target]["inputs"][target_slot]
        # an input of several types ("IMAGE,VIDEO") keeps them all; the link has its source's type
        assert target_input["link"] == link_id and kind in target_input["type"].split(",")
    for node in nodes.values():
        cls = NODE_CLASS_MAPPINGS.get(node["type"])
        if cls is not None:
            assert len(node["widgets_values"]) == len(ui_widgets(cls)), node["type"]
            for input_ in node["inputs"]:
                assert input_["name"] in declared_inputs(cls)
        if node["type"] == "LoadModalMasks":
            folder = node["widgets_values"][0]
            assert folder.startswith(examples.INPUT_SUBFOLDER + "/")
            assert (examples.EXAMPLES_DIR / folder.removeprefix(examples.INPUT_SUBFOLDER + "/")).is_dir()
        if node["type"] == "LoadVideo":
            clip = node["widgets_values"][0].removeprefix(examples.VIDEO_PREFIX).removesuffix(".mp4")
            assert (examples.EXAMPLES_DIR / clip / "rgb").is_dir()
