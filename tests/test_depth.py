"""PseudoDepth: Depth Anything V2 loading (transformers folder, authors' single files), preprocessing, normalization,
the external-depth path, and the ComfyUI node, against the fixtures in ../shared/parity."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from diffusion_vas.models.depth.estimator import load_depth_model, network_input_size, normalize_depth
from diffusion_vas.nodes.depth import PseudoDepth

from conftest import PARITY, TINY

TINY_HF = TINY.depth  # the parity fixtures' tiny transformers model, or one built for this run
TINY_OFFICIAL = TINY.depth_official  # authors' layout: ../shared's, or one built for this run
FAST_INPUT = 56  # network input side for plumbing tests (the real 518 is exercised by the parity test)


@pytest.fixture(scope="module")
def parity():
    if not PARITY.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY}")
    return PARITY


@pytest.fixture(scope="module")
def depth_case(parity):
    return load_file(str(parity / "depth_case.safetensors"))


@pytest.fixture(scope="module")
def frames():
    """``[5, 90, 172, 3]`` float frames in 0..1, as a ComfyUI IMAGE (the depth case's, or random without it)."""
    if PARITY.is_dir():
        return load_file(str(PARITY / "depth_case.safetensors"))["rgb_u8"].float() / 255
    return torch.rand(5, 90, 172, 3, generator=torch.Generator().manual_seed(0))


def run_node(**inputs):
    """Calls the node the way ComfyUI does."""
    cls = PseudoDepth
    return getattr(cls(), cls.FUNCTION)(**inputs)


def test_network_input_size_follows_the_authors_rule():
    assert network_input_size(90, 172) == (518, 994)  # 172 * 518 / 90 = 989.96 -> 71 * 14
    assert network_input_size(518, 518) == (518, 518)
    assert network_input_size(1080, 1920) == (518, 924)
    assert network_input_size(1920, 1080) == (924, 518)
    assert network_input_size(100, 101) == (518, 518)  # 523.18 / 14 = 37.4 -> 37
    assert network_input_size(518, 539) == (518, 532)  # 539 / 14 = 38.5 -> 38 (half to even, as numpy)
    with pytest.raises(ValueError, match="multiple of 14"):
        network_input_size(90, 172, 500)


def test_normalize_depth_clip_and_frame():
    depth = torch.stack([torch.linspace(1, 2, 12).view(3, 4), torch.linspace(3, 5, 12).view(3, 4)])
    clip = normalize_depth(depth, "clip")
    assert clip.min() == 0 and clip.max() == 1
    assert clip[0].max() < 1 and clip[1].min() > 0  # one min/max for the whole clip
    torch.testing.assert_close(clip, (depth - 1) / 4)
    frame = normalize_depth(depth, "frame")
    assert torch.all(frame.amin(dim=(1, 2)) == 0) and torch.all(frame.amax(dim=(1, 2)) == 1)
    assert torch.count_nonzero(normalize_depth(torch.full((2, 3, 4), 7.0))) == 0  # constant: no NaN
    flat_frame = normalize_depth(torch.stack([torch.full((3, 4), 7.0), depth[1]]), "frame")
    assert torch.count_nonzero(flat_frame[0]) == 0 and flat_frame[1].max() == 1


def test_normalize_depth_rejects_bad_input():
    with pytest.raises(ValueError, match="normalization"):
        normalize_depth(torch.rand(2, 3, 4), "video")
    with pytest.raises(ValueError, match=r"\[T, H, W\]"):
        normalize_depth(torch.rand(3, 4))
    with pytest.raises(ValueError, match="NaN"):
        normalize_depth(torch.tensor([[[0.0, float("nan")]]]))


def test_single_file_matches_the_authors_code(depth_case):
    """The authors' checkpoint layout, mapped onto transformers, reproduces their ``infer_image`` (fed RGB)."""
    estimator = load_depth_model(TINY_OFFICIAL)
    depth = estimator.predict(depth_case["rgb_u8"], batch_size=5)
    reference = depth_case["depth"]
    assert depth.shape == reference.shape and depth.dtype == torch.float32
    span = reference.max() - reference.min()
    # Measured: mean 0.044 %, max 0.51 % of the range. All of it comes from the position-embedding resize:
    # DINOv2 resizes with scale_factor (n + 0.1) / 37, transformers to the exact grid size.
    assert (depth - reference).abs().mean() <= 0.01 * span
    assert (depth - reference).abs().max() <= 0.02 * span


def test_fp16_safetensors_single_file_loads_like_the_pth(tmp_path):
    """``*_fp16.safetensors`` files of other depth node packs hold the same keys as the authors' .pth."""
    state = torch.load(str(TINY_OFFICIAL), map_location="cpu", weights_only=True)
    file = tmp_path / "depth_anything_v2_vits_fp16.safetensors"
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(file))
    shutil.copy(TINY_OFFICIAL.with_name("config.json"), tmp_path / "config.json")
    half = load_depth_model(file, dtype=torch.float16)
    full = load_depth_model(TINY_OFFICIAL)
    assert half.dtype == torch.float16
    full_state = full.model.state_dict()
    for key, tensor in half.model.state_dict().items():
        assert torch.equal(tensor, full_state[key].half()), key


def test_real_file_sizes_come_from_the_encoder_name(tmp_path):
    """Without a config.json the name decides: a tiny file named vitl does not fit, and the error says so."""
    file = tmp_path / "depth_anything_v2_vitl.pth"
    shutil.copy(TINY_OFFICIAL, file)
    with pytest.raises(RuntimeError, match="depth_anything_v2_vitl.pth does not fit the vitl"):
        load_depth_model(file)


def test_tiny_transformers_checkpoint_through_the_node(frames):
    (depth,) = run_node(images=frames, model=str(TINY_HF), normalization="clip", batch_size=2,
                        precision="fp32", input_size=FAST_INPUT)
    assert depth.shape == (5, 90, 172, 3) and depth.dtype == torch.float32
    assert depth.min() == 0 and depth.max() == 1  # over the clip
    assert torch.equal(depth[..., 0], depth[..., 1]) and torch.equal(depth[..., 0], depth[..., 2])
    (one_by_one,) = run_node(images=frames, model=str(TINY_HF), batch_size=1, precision="fp32",
                             input_size=FAST_INPUT)
    torch.testing.assert_close(one_by_one, depth, atol=1e-5, rtol=0)


def test_frame_normalization_through_the_node(frames):
    (depth,) = run_node(images=frames, model=str(TINY_HF), normalization="frame", batch_size=5,
                        precision="fp32", input_size=FAST_INPUT)
    assert torch.all(depth.amin(dim=(1, 2, 3)) == 0) and torch.all(depth.amax(dim=(1, 2, 3)) == 1)


def test_external_depth_reproduces_the_stage1_condition(parity_case):
    """Normalizing ``input/depth_raw`` over the clip, mapping to [-1, 1] and resizing gives ``stage1/depth_pixels``."""
    images = parity_case["input/rgb_u8"].float() / 255
    raw = parity_case["input/depth_raw"]
    (depth,) = run_node(images=images, model="no-model-needed", depth=raw[..., None].expand(-1, -1, -1, 3))
    assert depth.shape == (25, 90, 172, 3) and depth.min() == 0 and depth.max() == 1
    pixels = F.interpolate((depth * 2 - 1).permute(0, 3, 1, 2), (64, 128), mode="bilinear", align_corners=False,
                           antialias=False)
    torch.testing.assert_close(pixels, parity_case["stage1/depth_pixels"], atol=1e-5, rtol=0)


def test_external_depth_is_checked_and_resized(frames):
    depth = torch.rand(5, 45, 86, 3).mean(dim=-1, keepdim=True).expand(-1, -1, -1, 3)
    (resized,) = run_node(images=frames, model="unused", normalization="frame", depth=depth)
    assert resized.shape == (5, 90, 172, 3)
    assert torch.all(resized.amin(dim=(1, 2, 3)) == 0) and torch.all(resized.amax(dim=(1, 2, 3)) == 1)
    with pytest.raises(ValueError, match="depth has 4 frames but images has 5"):
        run_node(images=frames, model="unused", depth=depth[:4])


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here.pth"):
        load_depth_model(tmp_path / "nothing-here.pth")
    folder = tmp_path / "half-downloaded"
    folder.mkdir()
    shutil.copy(TINY_HF / "config.json", folder / "config.json")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_depth_model(folder)
    with pytest.raises(FileNotFoundError, match="nothing-here.pth"):
        run_node(images=torch.rand(1, 8, 8, 3), model=str(tmp_path / "nothing-here.pth"))


@pytest.mark.parametrize("name", ["depth_anything_v2_vits.pth", "depth_anything_v2_vits_fp16.safetensors"])
def test_corrupt_single_files_are_named(tmp_path, name):
    file = tmp_path / name
    file.write_bytes(b"\x00not a checkpoint" * 64)
    with pytest.raises(RuntimeError, match=name):
        load_depth_model(file)


def test_corrupt_transformers_folder_is_named(tmp_path):
    folder = tmp_path / "broken-hf"
    folder.mkdir()
    shutil.copy(TINY_HF / "config.json", folder / "config.json")
    (folder / "model.safetensors").write_bytes(b"\x00garbage" * 64)
    with pytest.raises(RuntimeError, match="broken-hf"):
        load_depth_model(folder)


def test_foreign_and_metric_files_are_refused(tmp_path):
    foreign = tmp_path / "depth_anything_v2_vits.safetensors"
    save_file({"encoder.weight": torch.zeros(2)}, str(foreign))
    with pytest.raises(RuntimeError, match="authors' layout"):
        load_depth_model(foreign)
    metric = tmp_path / "depth_anything_v2_metric_hypersim_vits.pth"
    shutil.copy(TINY_OFFICIAL, metric)
    with pytest.raises(ValueError, match="metric"):
        load_depth_model(metric)


def test_model_folder_listing_and_validation(tmp_path, monkeypatch, frames):
    """Files and folders in the registered ``depthanything`` folder are listed and load by name."""
    monkeypatch.setenv("DIFFUSION_VAS_MODELS_DIR", str(tmp_path))
    folder = tmp_path / "depthanything"
    shutil.copytree(TINY_HF, folder / "tiny-hf")
    shutil.copy(TINY_OFFICIAL, folder / TINY_OFFICIAL.name)
    shutil.copy(TINY_OFFICIAL.with_name("config.json"), folder / "config.json")
    (folder / "notes.txt").write_text("not a model")
    names = PseudoDepth.INPUT_TYPES()["required"]["model"][0]
    assert names[:3] == ["Depth-Anything-V2-Small-hf", "Depth-Anything-V2-Base-hf", "Depth-Anything-V2-Large-hf"]
    assert {"tiny-hf", TINY_OFFICIAL.name} <= set(names) and "notes.txt" not in names
    assert PseudoDepth.INPUT_TYPES()["required"]["model"][1]["default"] == "Depth-Anything-V2-Large-hf"
    assert PseudoDepth.VALIDATE_INPUTS(model="tiny-hf") is True
    assert PseudoDepth.VALIDATE_INPUTS(model=str(TINY_OFFICIAL)) is True
    assert "neither" in PseudoDepth.VALIDATE_INPUTS(model="missing.pth")
    (depth,) = run_node(images=frames[:2], model=TINY_OFFICIAL.name, batch_size=2, input_size=FAST_INPUT)
    assert depth.shape == (2, 90, 172, 3) and depth.min() == 0 and depth.max() == 1
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        run_node(images=frames[:1], model="missing.pth")


def test_node_metadata():
    assert PseudoDepth.CATEGORY == "Diffusion-VAS" and PseudoDepth.RETURN_TYPES == ("IMAGE",)
    inputs = PseudoDepth.INPUT_TYPES()
    for section in inputs.values():
        for name, (_, options) in section.items():
            assert options.get("tooltip"), name
    assert set(inputs["required"]) >= {"images", "model", "normalization", "batch_size", "precision"}
    assert inputs["required"]["normalization"][0] == ["clip", "frame"]
    assert "depth" in inputs["optional"]
    from diffusion_vas import NODE_CLASS_MAPPINGS

    assert NODE_CLASS_MAPPINGS["PseudoDepth"] is PseudoDepth


def test_hf_names_download_on_first_use(tmp_path, monkeypatch, frames):
    """A listed ``*-hf`` name missing from the model folder is fetched into the first folder, then loaded."""
    import huggingface_hub

    calls = []

    def fake_download(repo_id, local_dir, allow_patterns):
        calls.append(repo_id)
        shutil.copytree(TINY_HF, local_dir, dirs_exist_ok=True)

    monkeypatch.setenv("DIFFUSION_VAS_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    for _ in range(2):
        (depth,) = run_node(images=frames[:1], model="Depth-Anything-V2-Small-hf", input_size=FAST_INPUT)
    assert calls == ["depth-anything/Depth-Anything-V2-Small-hf"]  # the second run finds the folder
    assert (tmp_path / "depthanything" / "Depth-Anything-V2-Small-hf" / "model.safetensors").is_file()
    assert depth.shape == (1, 90, 172, 3)


def test_failed_or_incomplete_downloads_are_reported(tmp_path, monkeypatch):
    import huggingface_hub

    from diffusion_vas.models.io.catalog import DEPTH, resolve_depth_model

    monkeypatch.setenv("DIFFUSION_VAS_MODELS_DIR", str(tmp_path))

    def offline(repo_id, local_dir, allow_patterns):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(RuntimeError, match="depth-anything/Depth-Anything-V2-Base-hf.*no network"):
        resolve_depth_model("Depth-Anything-V2-Base-hf")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, local_dir, allow_patterns: None)
    with pytest.raises(RuntimeError, match="incomplete"):
        resolve_depth_model("Depth-Anything-V2-Base-hf")
    assert DEPTH.published["Depth-Anything-V2-Base-hf"] == "depth-anything/Depth-Anything-V2-Base-hf"
