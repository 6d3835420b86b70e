"""Random-weight checkpoints in the published layouts (`models.realsize`, tools/build_realsize_checkpoints.py):
the real sizes against the published files, and the builder at test sizes (it loads, is deterministic, fp16 files
are the float32 ones rounded)."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO
from diffusion_vas.models import load_pipeline
from diffusion_vas.models.depth.estimator import load_depth_model
from diffusion_vas.models import realsize as R

# Sizes of the published files (Hugging Face listings): SVD-XT's unet/vae/image_encoder *.fp16.safetensors, which the
# Diffusion-VAS checkpoints keep, and Depth-Anything-V2-Large-hf's float32 model.safetensors.
PUBLISHED_BYTES = {"unet": (3.05e9, 2), "vae": (196e6, 2), "clip": (1.26e9, 2), "depth": (1.34e9, 4)}


@pytest.mark.parametrize("name", sorted(PUBLISHED_BYTES))
def test_real_architecture_has_the_published_sizes(name):
    build, config = {"unet": (R.build_unet, R.REAL.unet), "vae": (R.build_vae, R.REAL.vae),
                     "clip": (R.build_image_encoder, R.REAL.clip), "depth": (R.build_depth_model, R.REAL.depth)}[name]
    model = build(config, 0, "meta")
    size, bytes_per_parameter = PUBLISHED_BYTES[name]
    assert R.parameter_count(model) * bytes_per_parameter == pytest.approx(size, rel=0.01)


def test_real_architecture_key_shapes():
    unet = R.build_unet(R.REAL.unet, 0, "meta")
    assert unet.conv_in2.weight.shape == (320, 12, 3, 3) and unet.conv_in.weight.shape == (320, 8, 3, 3)
    clip = R.build_image_encoder(R.REAL.clip, 0, "meta")
    assert clip.visual_projection.weight.shape == (1024, 1280)  # the UNet's cross_attention_dim
    assert clip.vision_model.embeddings.position_embedding.weight.shape == (257, 1280)  # ViT-H/14 at 224
    depth = R.build_depth_model(R.REAL.depth, 0, "meta")
    assert depth.backbone.embeddings.position_embeddings.shape == (1, 1370, 1024)  # 37 x 37 patches + cls at 518


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    return R.write_stage_pair(out, seed=3, architecture=R.SMALL)


def test_small_pair_has_the_published_layout_and_loads_both_variants(pair):
    stage1, stage2 = pair
    assert [p.name for p in pair] == list(R.STAGE_FOLDERS)
    index = json.loads((stage1 / "model_index.json").read_text())
    assert index["unet"] == ["models.diffusion_vas.unet_diffusion_vas", "UNetSpatioTemporalConditionModel"]
    for stem, folder in (("diffusion_pytorch_model", "unet"), ("diffusion_pytorch_model", "vae"),
                         ("model", "image_encoder")):
        full = load_file(str(stage1 / folder / f"{stem}.safetensors"))
        half = load_file(str(stage1 / folder / f"{stem}.fp16.safetensors"))
        assert full.keys() == half.keys()
        assert all(full[k].dtype == torch.float32 and torch.equal(full[k].half(), half[k]) for k in full)
    # one VAE and image encoder for both stages (hard links), different UNets
    for name in ("vae/diffusion_pytorch_model.safetensors", "image_encoder/model.fp16.safetensors"):
        assert (stage1 / name).stat().st_ino == (stage2 / name).stat().st_ino
    unet1 = load_file(str(stage1 / "unet" / "diffusion_pytorch_model.safetensors"))
    unet2 = load_file(str(stage2 / "unet" / "diffusion_pytorch_model.safetensors"))
    assert not torch.equal(unet1["conv_in2.weight"], unet2["conv_in2.weight"])

    full, half = load_pipeline(stage1, dtype=torch.float32), load_pipeline(stage1, dtype=torch.bfloat16)
    assert full.unet.conv_in2.in_channels == 12 and half.unet.conv_in2.weight.dtype == torch.bfloat16
    assert torch.equal(half.unet.conv_in2.weight, unet1["conv_in2.weight"].half().to(torch.bfloat16))
    cond = torch.rand(3, 3, 64, 128) * 2 - 1
    frames = full.sample(cond, cond, num_inference_steps=1)
    assert frames.shape == (3, 3, 64, 128) and torch.isfinite(frames).all()


def test_same_seed_same_files_other_seed_other_weights(pair, tmp_path):
    again = R.write_stage_pair(tmp_path, seed=3, architecture=R.SMALL, variants=("fp32",))
    first = {k: v for k, v in _digest(pair[0]).items() if ".fp16." not in k}
    assert _digest(again[0]) == first
    other = R.write_stage_pair(tmp_path / "other", seed=4, architecture=R.SMALL, variants=("fp32",))
    assert _digest(other[0])["unet/diffusion_pytorch_model.safetensors"] != first[
        "unet/diffusion_pytorch_model.safetensors"]


def test_rebuilding_with_fewer_variants_leaves_no_stale_file(pair, tmp_path):
    folders = R.write_stage_pair(tmp_path, seed=0, architecture=R.SMALL)
    R.write_stage_pair(tmp_path, seed=0, architecture=R.SMALL, variants=("fp16",))
    assert sorted(p.name for p in (folders[0] / "unet").iterdir()) == [
        "config.json", "diffusion_pytorch_model.fp16.safetensors"]


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fp8"):
        R.save_weights({"w": torch.zeros(1)}, tmp_path, "model", ("fp8",))


def test_tool_writes_a_depth_model_that_loads(tmp_path):
    spec = importlib.util.spec_from_file_location("build_realsize", REPO / "tools" / "build_realsize_checkpoints.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(["--out", str(tmp_path), "--architecture", "small", "--parts", "depth"])
    folder = tmp_path / R.DEPTH_FOLDER
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "preprocessor_config.json"}
    estimator = load_depth_model(folder)
    depth = estimator.predict(torch.rand(2, 28, 56, 3))
    assert depth.shape == (2, 28, 56) and torch.isfinite(depth).all()
