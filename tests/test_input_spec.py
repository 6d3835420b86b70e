"""The nodes' inputs are generated from one declarative spec (`models.settings`); this file keeps what they were
before that, input by input (type, default, range, step, tooltip, the advanced flag, hidden inputs), and checks
that the generated ``INPUT_TYPES`` are exactly that. A deliberate change (a new optional input at the end, a
better tooltip) updates the record with ``python tests/test_input_spec.py --update`` and shows in the diff.

Model lists depend on the folders found, so they are read with an empty models folder: the published names only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RECORD = Path(__file__).resolve().parent / "data" / "node_input_types.json"


def current_input_types() -> dict:
    """Every node's ``INPUT_TYPES()`` as JSON values (tuples as lists)."""
    from diffusion_vas import NODE_CLASS_MAPPINGS

    return json.loads(json.dumps({name: cls.INPUT_TYPES() for name, cls in NODE_CLASS_MAPPINGS.items()}))


def test_generated_input_types_equal_the_record(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFUSION_VAS_MODELS_DIR", str(tmp_path))
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    current = current_input_types()
    assert list(current) == list(record), "nodes added, removed or reordered"
    for node, sections in record.items():
        assert list(current[node]) == list(sections), f"{node}: sections differ"
        for section, inputs in sections.items():
            assert list(current[node][section]) == list(inputs), f"{node}.{section}: input names or order differ"
            for name, declared in inputs.items():
                assert current[node][section][name] == declared, f"{node}.{section}.{name} differs"


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    import os
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as empty:
        os.environ["DIFFUSION_VAS_MODELS_DIR"] = empty
        RECORD.write_text(json.dumps(current_input_types(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RECORD}")


# --- the command line from the same declarations --------------------------------------------------------------------

def _declared():
    from diffusion_vas.models import settings as S

    found = [value for value in vars(S).values() if isinstance(value, S.Setting)]
    return found + list(S.training_settings())


def test_every_setting_has_a_flag_or_says_why_not_and_the_same_for_nodes():
    for setting in _declared():
        assert setting.flag or setting.no_cli, f"{setting.name}: no flag and no reason"
        assert setting.help or setting.no_node, f"{setting.name}: no tooltip and no reason it has no node input"
        assert not (setting.flag and setting.no_cli), f"{setting.name}: a flag and a reason for having none"


def _parse(*argv):
    from diffusion_vas.commands import build_parser

    return build_parser().parse_args(list(argv))


def test_run_defaults_are_the_engine_defaults():
    from diffusion_vas.commands.run import settings_from_args
    from diffusion_vas.models import ShotSettings

    parsed = settings_from_args(_parse("run", "--frames", "f", "--masks", "m", "--out", "o"))
    assert parsed == ShotSettings(frames=Path("f"), masks=Path("m"), out=Path("o"))


def test_run_has_the_nodes_controls_and_sets_each_stage():
    """The six controls the nodes had and the command line lacked (and the model's fps), each reaching the field it
    names; the seeds per stage, the rest shared; ``--guidance`` still works beside ``--guidance-scale``."""
    from diffusion_vas.commands.run import settings_from_args
    from diffusion_vas.models import SamplingOptions

    parsed = settings_from_args(_parse(
        "run", "--frames", "f", "--masks", "m", "--out", "o", "--object-batch-size", "2", "--decode-chunk-size", "3",
        "--motion-bucket-id", "50", "--noise-aug-strength", "0.1", "--threshold", "500", "--no-keep-visible-pixels",
        "--model-fps", "6", "--guidance", "2.5", "--seed", "5", "--content-seed", "7", "--size", "128x256",
        "--steps", "4", "--samples", "2", "--window", "9", "--overlap", "3"))
    shared = dict(object_batch_size=2, decode_chunk_size=3, motion_bucket_id=50, noise_aug_strength=0.1, fps=6,
                  guidance_scale=2.5, num_inference_steps=4, samples=2, window=9, overlap=3)
    assert parsed.amodal == SamplingOptions.for_stage("amodal", seed=5, **shared)
    assert parsed.content == SamplingOptions.for_stage("content", seed=7, **shared)
    assert (parsed.threshold, parsed.keep_visible_pixels, parsed.size) == (500, False, (128, 256))
    assert _parse("run", "--frames", "f", "--masks", "m", "--out", "o", "--guidance-scale", "3").guidance_scale == 3


def test_node_and_flag_defaults_agree(monkeypatch, tmp_path):
    """Where a node widget and a flag are the same setting, their defaults are one value."""
    from diffusion_vas import NODE_CLASS_MAPPINGS

    monkeypatch.setenv("DIFFUSION_VAS_MODELS_DIR", str(tmp_path))
    args = vars(_parse("run", "--frames", "f", "--masks", "m", "--out", "o"))
    for node, stage in (("AmodalMaskSVD", "amodal"), ("AmodalContentSVD", "content")):
        declared = NODE_CLASS_MAPPINGS[node].INPUT_TYPES()
        widgets = {**declared["required"], **declared.get("optional", {})}
        seed = "seed" if stage == "amodal" else "content_seed"
        for widget, flag in (("seed", seed), ("steps", "steps"), ("guidance_scale", "guidance_scale"),
                             ("window", "window"), ("overlap", "overlap"), ("fps", "model_fps"),
                             ("decode_chunk_size", "decode_chunk_size"), ("region", "region")):
            assert widgets[widget][1]["default"] == args[flag], (node, widget)
    depth = NODE_CLASS_MAPPINGS["PseudoDepth"].INPUT_TYPES()
    assert depth["required"]["input_size"][1]["default"] == args["depth_input_size"]
    assert depth["required"]["batch_size"][1]["default"] == args["depth_batch_size"]


def test_train_flags_set_the_config_fields_they_name(tmp_path):
    from diffusion_vas.commands.train import config_from_args
    from diffusion_vas.models import TrainingConfig

    base = ["train", "--stage", "content", "--base", str(tmp_path), "--data", "synthetic:2", "--out", "o"]
    assert config_from_args(_parse(*base)) == TrainingConfig(stage="content", base=str(tmp_path), data="synthetic:2",
                                                             out="o")
    changed = config_from_args(_parse(*base, "--frames", "9", "--keep-checkpoints", "5", "--validation-steps", "3",
                                      "--size", "64x128", "--max-steps", "7", "--lora-rank", "4"))
    assert (changed.num_frames, changed.checkpoints_total_limit, changed.validation_inference_steps, changed.size,
            changed.max_steps, changed.lora_rank) == (9, 5, 3, (64, 128), 7, 4)
