"""Driving a real ComfyUI from a script: a free port, JSON over HTTP, a server process stopped on exit, waiting
for it to answer, and a UI-format workflow turned into the API prompt ``/prompt`` takes. Shared by
``tests/test_comfyui_integration.py``, ``tools/comfyui_long_shot.py`` and ``tools/screenshot_workflows.py`` (each
loads this file by path: ``tools/`` is not a package)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

FRONTEND_ONLY = ("Note", "MarkdownNote")  # nodes the front end draws and never queues
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # a combo whose choice brings its own widgets (ComfyUI 0.3x)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url: str, payload: dict | None = None, timeout: float = 60):
    """GET ``url`` (POST ``payload`` as JSON when given) and the JSON answer (None for an empty one)."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def wait_for(url: str, process: subprocess.Popen, timeout: float, what: str, log: Path | None = None):
    """``url``'s JSON once ``process`` answers; RuntimeError (with the log's tail) if it exits or stays silent."""
    tail = (lambda: "\n" + log.read_text()[-4000:]) if log is not None else (lambda: "")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}{tail()}")
        try:
            return http_json(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout:.0f} s{tail()}")


@contextmanager
def running(command: list[str], log: Path, **kwargs):
    """A subprocess writing to ``log``, terminated (then killed) on exit."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def to_api(workflow: dict, object_info: dict) -> dict:
    """UI-format workflow -> API prompt: ``widgets_values`` onto the widget inputs in ``input_order``, skipping the
    values the front end stores after a seed (its control) or a file combo (the upload button); a dynamic combo
    (ComfyUI 0.3x, e.g. Save Video's ``format``) takes its value, then its chosen option's widgets under
    ``name.widget``. ValueError for a muted or bypassed node, a node type the server does not know (a pack failed
    to import), or values left over."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        if node.get("mode", 0) != 0:
            raise ValueError(f"node {node['id']} is muted or bypassed")
        if node["type"] not in object_info:
            raise ValueError(f"node type {node['type']} is not registered (did a pack fail to import?)")
        info = object_info[node["type"]]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        names = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        values, inputs = list(node.get("widgets_values") or []), {}
        _widgets_onto(names, specs, values, inputs, "")
        if values:
            raise ValueError(f"node {node['id']} ({node['type']}) has unused widget values {values}")
        for slot in node["inputs"]:
            if slot.get("link") is not None:
                _, source, source_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(source), source_slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def _widgets_onto(names: list[str], specs: dict, values: list, inputs: dict, prefix: str) -> None:
    """Takes ``values`` from the front onto the widget inputs ``names`` (``specs``: their object_info entries)."""
    for name in names:
        kind, options = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
        if options.get("hidden") or not values:
            continue
        if kind == DYNAMIC_COMBO:
            value = inputs[prefix + name] = values.pop(0)
            chosen = next((o["inputs"] for o in options.get("options", []) if o["key"] == value), {})
            nested = {**chosen.get("required", {}), **chosen.get("optional", {})}
            _widgets_onto(list(nested), nested, values, inputs, f"{prefix}{name}.")
            continue
        if not (isinstance(kind, list) or kind in WIDGET_TYPES):
            continue
        inputs[prefix + name] = values.pop(0)
        control = options.get("control_after_generate", kind == "INT" and name in ("seed", "noise_seed"))
        upload = any(key.endswith("_upload") and value for key, value in options.items())
        del values[:int(bool(control)) + int(upload)]
