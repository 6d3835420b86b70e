"""Diffusion-VAS engine: pure PyTorch / diffusers / transformers, no ComfyUI. This module is its public face.

The nodes (``nodes/``) and the command line (``commands/``) import the engine only from here and from the modules
beside it (`settings`: every user-facing setting; `realsize`); a test holds them to that. The stage functions and
the sampler's types are imported with the package; every other name of the face is imported on first use, so that
reading the settings or showing ``--help`` does not load the training, benchmark or media code.

Subpackages, lowest layer first (a module imports only its own layer or lower ones; tests/test_layers.py): ``base``
(generic helpers), ``host`` (device, precision, model folders), ``engine`` (UNet, loading, sampler, windows),
``depth`` and ``stages``, ``io`` and ``datasets``, ``editing``, ``evaluation``, ``training``, ``shot`` (a real shot
from files to files).
"""

from importlib import import_module

from .engine.loading import load_pipeline
from .engine.options import DEFAULT_SIZE, STAGE_SEEDS, STAGES, SamplingOptions, parse_size
from .engine.pipeline import DiffusionVASPipeline
from .stages.run import (AmodalContent, AmodalMasks, ContentStream, complete_content, complete_content_stream,
                         predict_amodal_masks)

# module -> the names it gives the face, imported on first use (PEP 562); ``{face name: module's name}`` renames
_ON_FIRST_USE = {
    ".base.chunking": ("MaskFormat", "all_finite", "chunks", "to_float"),
    ".base.errors": ("PackError",),
    ".base.sequences": ("ResizedDepth", "TensorFrames"),
    ".host": ("Host", "get_host", "resolve_device", "resolve_dtype", "set_host"),
    ".host.allocator": ("tune_for_long_runs",),
    ".engine.runtime": ("sampling_bytes",),
    ".engine.unet": ("DEFAULT_COMPILE",),
    ".depth.estimator": ("DepthEstimator", "INPUT_SIZE", "load_depth_model", "normalize_depth"),
    ".depth.resolution": ("DEFAULT_DEPTH_FROM", "DepthFromFrames", "predict_depth"),
    ".stages.conditions": ("resize_masks_nearest", "to_uint8"),
    ".stages.hypotheses": ("agreement", "completion_samples", "consensus", "hypotheses_per_object",
                           {"select_sample": "select"}),
    ".io.catalog": ("AMODAL_SEGMENTATION", "CHECKPOINT_WORDS", "CONTENT_COMPLETION", "DEFAULT_DEPTH_MODEL", "DEPTH",
                    "DIFFUSION_VAS", "STAGE_CHECKPOINTS", "available_models", "checkpoint_stage", "is_checkpoint",
                    "resolve_checkpoint", "resolve_depth_model"),
    ".io.frame_source": ("VideoFrames", "read_frames"),
    ".io.mask_files": ("read_mask_files", "read_mask_folder"),
    ".io.media": ("image_files", "pyav_available", "write_animation"),
    ".editing.composite": ("composite_edit", "composite_masks", "composite_stream", "shot_background"),
    ".evaluation.benchmark": ("DATASETS", "open_dataset", "run_benchmark", "settings_for"),
    ".evaluation.benchmark_scoring": ("DEFAULT_BUCKETS", "format_summary", "load_results", "score_results"),
    ".evaluation.metrics": ("completion_metrics", "completion_top_k", "number", "paper_protocol", "percent",
                            "strict_protocol", "top_k_scores"),
    ".training.config": ("TrainingConfig",),
    ".training.launch": ("check_launch",),
    ".training.memory": ("GIB", "estimate_memory", "memory_table", {"MEMORY_SETTINGS": "SETTINGS"}),
    ".training.trainer": ("train",),
    ".shot": ("ShotSettings", "run_shot"),
    ".shot.outputs": ("MP4_CRF", "MP4_PRESET"),
}
_WHERE = {}  # face name -> (module, the module's name for it)
for _module, _names in _ON_FIRST_USE.items():
    for _entry in _names:
        _WHERE.update({name: (_module, inner) for name, inner in _entry.items()} if isinstance(_entry, dict)
                      else {_entry: (_module, _entry)})


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, inner = _WHERE[name]
    value = getattr(import_module(module, __name__), inner)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "load_pipeline", "DiffusionVASPipeline", "SamplingOptions", "STAGE_SEEDS", "STAGES", "DEFAULT_SIZE", "parse_size",
    "AmodalMasks", "AmodalContent", "predict_amodal_masks", "complete_content", "complete_content_stream",
    "ContentStream", *_WHERE,
]
