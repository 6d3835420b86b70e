"""Stand-ins for ComfyUI's model management in the tests: what the pack asks it for, recorded."""

from __future__ import annotations


def record_load_requests(monkeypatch, comfy_bridge) -> list[tuple]:
    """Makes ``comfy_bridge``'s model management a stand-in whose ``load_models_gpu`` records each call as
    ``(models, memory_required, force_full_load)``; returns that list."""
    calls = []

    class FakeManagement:
        @staticmethod
        def load_models_gpu(models, memory_required=0, force_full_load=False):
            calls.append((models, memory_required, force_full_load))

    monkeypatch.setattr(comfy_bridge, "model_management", FakeManagement)
    return calls


def record_memory_asked(monkeypatch, model) -> list[int]:
    """The working memory a loaded ``DIFFUSION_VAS_MODEL`` asks its managed modules for, call by call."""
    asked = []
    real = model.managed.managed

    def managed(memory_required=0):
        asked.append(memory_required)
        return real(memory_required)

    monkeypatch.setattr(model.managed, "managed", managed)
    return asked
