"""benchmarks/device_check.sh in its CPU mode at test sizes: every step of the GPU check runs and prints its table,
so the script cannot fail for a typo when a GPU is lent."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO

STEPS = ("stages: 64x128", "torch.compile (aot_eager)", "12 GB cap (no cap on the CPU)", "host-side cost at 480x270",
         "bigger size: 128x256")


def test_device_check_runs_every_step_on_the_cpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "device_check.sh"), "--cpu", "--small", "--out",
                           str(tmp_path / "models"), "--budget", "400"], capture_output=True, text=True, env=env,
                          timeout=420)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for step in STEPS:
        assert step in out, f"{step!r} missing from:\n{out}"
    assert "skipped" not in out
    assert out.count("\nstage 1 ") >= 4 and out.count("\nstage 2 ") >= 4  # rows of every table, both stages
    assert "device check done" in out
