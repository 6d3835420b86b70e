"""Catches the one ``accelerate launch`` form that silently runs a single process: ``--cpu --num_processes N``.

``accelerate launch --cpu`` always takes accelerate's *simple* launcher (one process, whatever
``--num_processes`` says); ``--multi_gpu`` goes through torchrun, which starts N processes and, with the
command's own ``--cpu``, connects them over gloo on the CPU. The simple launcher leaves a recognisable trace in
the environment: ``ACCELERATE_USE_CPU`` true, ``MASTER_ADDR`` set (it sets it only for ``--num_processes`` > 1
or several machines), and no world size from torchrun or MPI (``WORLD_SIZE``, ``PMI_SIZE``,
``OMPI_COMM_WORLD_SIZE``, ``MV2_COMM_WORLD_SIZE``; an ``--mpirun_hostfile`` launch has one of these and is a real
multi-process run). Only the environment is read: nothing is imported or started.
"""

from __future__ import annotations

import os

WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def single_process_cpu_launch(environ=None) -> bool:
    """True when this process was started by ``accelerate launch --cpu --num_processes N`` with N > 1 (the
    module docstring's trace), i.e. it is the only process although several were asked for."""
    env = os.environ if environ is None else environ
    use_cpu = env.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes", "y", "on")
    return use_cpu and "MASTER_ADDR" in env and not any(name in env for name in WORLD_SIZE_VARIABLES)


def check_launch(command: str, environ=None) -> None:
    """Raises ValueError with the launch form that works when `single_process_cpu_launch` is true.

    ``command`` is the ``diffusion-vas`` subcommand (``train`` or ``benchmark run``), shown in the message.
    """
    if not single_process_cpu_launch(environ):
        return
    flag = " --cpu" if command == "train" else " --device cpu"
    raise ValueError(
        f"`accelerate launch --cpu --num_processes N` starts only one process (accelerate's --cpu always uses its "
        f"single-process launcher and ignores --num_processes), so this run would be one process, not N. For N "
        f"CPU processes connected over gloo run: accelerate launch --multi_gpu --num_processes N "
        f"-m diffusion_vas.commands {command}{flag} ... ; for one process leave out --num_processes (or run "
        f"diffusion-vas {command}{flag} ... without accelerate).")
