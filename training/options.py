"""Config fields that are also `train` options: help, choices and required-ness in the field's metadata.

RunConfig (the common run settings) and each family's architecture dataclass declare their fields with
these; training/cli.py builds the parser from them and config.train_command inverts it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


def option(default: Any, help: str, *, choices: tuple | None = None, required: bool = False,
           aliases: tuple[str, ...] = ()) -> Any:
    meta = {"help": help, "choices": choices, "required": required, "aliases": aliases}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def internal(default: Any) -> Any:
    """A field that is not an option (filled in by the code)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"cli": False})
    return field(default=default, metadata={"cli": False})


def option_flag(name: str) -> str:
    """The command-line flag of a field: hidden_sizes -> --hidden-sizes."""
    return "--" + name.replace("_", "-")


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (a fresh one for a list)."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def options_of(cls: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass that are `train` options, in declaration order."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def help_of(cls: type, name: str) -> str:
    return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)
