"""Checkpoint loading: published layout, fp16 variants, errors that name the file."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from diffusion_vas.models import load_pipeline
from diffusion_vas.models.engine.loading import weights_file
from conftest import TINY as MODELS

TINY = MODELS.stage1


@pytest.fixture
def checkpoint(tmp_path):
    dest = tmp_path / "ckpt"
    shutil.copytree(TINY, dest)
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def test_loads_without_importing_reference_module(checkpoint):
    index = json.loads((checkpoint / "model_index.json").read_text())
    assert index["unet"][0] == "models.diffusion_vas.unet_diffusion_vas"
    pipe = load_pipeline(checkpoint)
    assert pipe.unet.conv_in.in_channels == 8 and pipe.unet.conv_in2.in_channels == 12
    assert pipe.dtype == torch.float32 and pipe.device.type == "cpu"


def test_fp16_variant_preferred_for_half_and_used_as_fallback(checkpoint):
    unet = checkpoint / "unet"
    full = unet / "diffusion_pytorch_model.safetensors"
    half = unet / "diffusion_pytorch_model.fp16.safetensors"
    save_file({k: v.half() for k, v in load_file(str(full)).items()}, str(half))
    assert weights_file(unet, "diffusion_pytorch_model", torch.float16) == half
    assert weights_file(unet, "diffusion_pytorch_model", torch.bfloat16) == half
    assert weights_file(unet, "diffusion_pytorch_model", torch.float32) == full
    full.unlink()
    assert weights_file(unet, "diffusion_pytorch_model", torch.float32) == half
    pipe = load_pipeline(checkpoint, dtype=torch.float32)
    assert pipe.unet.conv_in2.weight.dtype == torch.float32


def test_half_precision_keeps_vae_encoder_in_fp32(checkpoint):
    pipe = load_pipeline(checkpoint, dtype=torch.float16)
    assert pipe.unet.conv_in2.weight.dtype == torch.float16
    assert pipe.vae.encoder.conv_in.weight.dtype == torch.float32  # force_upcast, as the reference
    assert pipe.vae.decoder.conv_in.weight.dtype == torch.float16


def test_missing_folder():
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_pipeline("/nowhere/diffusion-vas")


@pytest.mark.parametrize("relative", [
    "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors", "image_encoder/model.safetensors",
    "feature_extractor/preprocessor_config.json", "scheduler/scheduler_config.json",
])
def test_missing_file_is_named(checkpoint, relative):
    (checkpoint / relative).unlink()
    with pytest.raises(FileNotFoundError, match=relative.split("/")[-1].replace(".", r"\.")):
        load_pipeline(checkpoint)


def test_corrupt_weights_are_named(checkpoint):
    target = checkpoint / "vae" / "diffusion_pytorch_model.safetensors"
    target.write_bytes(b"not a safetensors file at all")
    with pytest.raises(RuntimeError, match="vae.diffusion_pytorch_model.safetensors"):
        load_pipeline(checkpoint)


def test_corrupt_config_is_named(checkpoint):
    (checkpoint / "unet" / "config.json").write_text("{broken")
    with pytest.raises(RuntimeError, match="unet.config.json"):
        load_pipeline(checkpoint)


def test_weights_not_matching_config_are_named(checkpoint):
    config = json.loads((checkpoint / "unet" / "config.json").read_text())
    config["layers_per_block"] = 2
    (checkpoint / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match="does not match"):
        load_pipeline(checkpoint)


def test_image_encoder_file_with_saved_position_ids_loads(checkpoint):
    """Older transformers saved CLIP's non-persistent ``position_ids``; the loader drops it and makes the buffer."""
    file = checkpoint / "image_encoder" / "model.safetensors"
    state = load_file(str(file))
    reference = load_pipeline(checkpoint).image_encoder
    save_file({**state, "vision_model.embeddings.position_ids": torch.arange(10).view(1, -1)}, str(file))
    encoder = load_pipeline(checkpoint).image_encoder
    positions = encoder.vision_model.embeddings.position_ids
    assert torch.equal(positions, reference.vision_model.embeddings.position_ids)
    assert torch.equal(positions, torch.arange(positions.shape[1]).view(1, -1))
    pixels = torch.rand(2, 3, 224, 224)
    assert torch.equal(encoder(pixels).image_embeds, reference(pixels).image_embeds)
