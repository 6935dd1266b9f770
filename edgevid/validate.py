"""Type checks of untrusted JSON against the frozen config dataclasses (model folders, run configs).

A dataclass built from whatever the JSON holds would fail deep inside torch with a TypeError
(a float where an int belongs). `check_config_types` says which field is wrong, in one line,
before anything is built; `edgevid.config.config_from_dict` runs it on every config it builds
(model folders, run folders, scene specs):

    >>> check_config_types(VAEConfig, {"latent_channels": 1.5}, "vae/config.json")
    ValueError: vae/config.json: latent_channels must be int, got 1.5
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any


def check_config_types(cls: type, data: dict, where: str = "config") -> None:
    """Raise ValueError naming the first field of `data` whose JSON value does not fit `cls`'s
    annotation (int, float, bool, str, Literal, tuples, unions). Unknown keys are left to
    config_from_dict, which names them."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in data and not _fits(data[f.name], hints[f.name]):
            raise ValueError(f"{where}: {f.name} must be {_describe(hints[f.name])}, got {data[f.name]!r:.80}")


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # JSON writes 1.0 as 1; NaN and inf are never a sensible config value
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if dataclasses.is_dataclass(hint):  # JSON, or one config_from_dict built already (SceneSpec's objects)
        return isinstance(value, (dict, hint))
    return True  # an annotation this checker does not know: the dataclass validates it


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
    if hint is float:
        return "a finite number"
    return getattr(hint, "__name__", str(hint))
