"""The command line's flags, generated from the settings' declarations (`models.settings`), and the parsed values
read back by the same declarations."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..models.settings import BOOLEAN, COMBO, FLOAT, INT, PATH, Setting

_TYPES = {INT: int, FLOAT: float, PATH: Path}


def dest(flag: str) -> str:
    """``--content-seed`` -> ``content_seed``: the attribute argparse stores a flag under."""
    return flag.lstrip("-").replace("-", "_")


def add_settings(parser: argparse.ArgumentParser, settings: Sequence[Setting], stages: Sequence[str] | None = None
                 ) -> None:
    """One flag per setting (one per stage where the stages differ), in the order given; ``stages``: only those
    stages' flags of a per-stage setting (a command that samples stage 1 only takes stage 1's seed)."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for setting in settings:
        if not setting.flags():
            raise ValueError(f"setting {setting.name!r} has no command-line flag ({setting.no_cli or 'no reason'}).")
        target = parser
        if setting.group:
            if setting.group not in groups:
                groups[setting.group] = parser.add_mutually_exclusive_group()
            target = groups[setting.group]
        for stage, flag in setting.flags().items():
            if stage is not None and stages is not None and stage not in stages:
                continue
            name = dest(flag)
            default = setting.default_for(stage)
            help_text = setting.cli_help if setting.cli_help is not None else setting.help
            if isinstance(help_text, dict):
                help_text = help_text[stage]
            kwargs = dict(dest=name, help=help_text.replace("%", "%%"))
            if setting.type == BOOLEAN:
                kwargs["action"] = argparse.BooleanOptionalAction if default else "store_true"
                if default:
                    kwargs["default"] = default
                    kwargs["help"] += " (default: %(default)s)"
            else:
                kwargs["default"] = default
                kwargs["type"] = setting.cli_type or _TYPES.get(setting.type, str)
                if setting.type == COMBO and not callable(setting.choices):
                    kwargs["choices"] = setting.choices_now()
                if setting.nargs:
                    kwargs["nargs"] = setting.nargs
                if setting.required:
                    kwargs["required"] = True
                elif default is not None and "(default:" not in kwargs["help"]:
                    shown = ",".join(default) if isinstance(default, tuple) else "%(default)s"
                    kwargs["help"] += f" (default: {shown})"
            target.add_argument(flag, *setting.aliases, **kwargs)


def values(args: argparse.Namespace, settings: Sequence[Setting], stage: str | None = None) -> dict:
    """``{engine field: value}`` for ``settings`` from the parsed ``args``, converted where the declaration says how
    (``--size 256x512`` -> ``(256, 512)``). With ``stage``, a setting with one flag per stage gives that stage's
    value under its field (the seeds, into that stage's `SamplingOptions`); without, each stage's value under its
    flag's name (``--stage1``, ``--stage2``: `ShotSettings` fields). Flags the parser did not define are left out."""
    found = {}
    for setting in settings:
        flags = setting.flags()
        if None in flags or stage is not None:
            named = {setting.field or setting.name: flags.get(None, flags.get(stage))}
        else:
            named = {dest(flag): flag for flag in flags.values()}
        for key, flag in named.items():
            if flag is None or not hasattr(args, dest(flag)):
                continue
            value = getattr(args, dest(flag))
            found[key] = setting.convert(value) if setting.convert is not None and value is not None else value
    return found
