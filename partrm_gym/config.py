"""YAML files mapped onto dataclasses, strictly: unknown keys and wrong types are errors.

Every config class is a (possibly nested) dataclass. :func:`load_config` reads a YAML
file, or a name of a shipped config such as ``"data/tiny"``, and :func:`save_config`
writes the resolved values next to an output so every result can be reproduced.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from partrm_gym.errors import UserError
from partrm_gym.io import atomic_write_text, path_kind

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config file does not match its dataclass."""


def shipped_configs() -> list[str]:
    """Names of the configs shipped in ``configs/`` (``"data/tiny"``, ``"train/tiny_stage0"``, ...)."""
    root = Path(str(resources.files("partrm_gym.configs")))
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def shipped_config_path(name: str) -> Path:
    """Path of a config shipped in ``configs/`` (``"data/tiny"`` -> ``configs/data/tiny.yaml``)."""
    rel = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    path = Path(str(resources.files("partrm_gym.configs").joinpath(rel)))
    if not path.is_file():
        raise ConfigError(f"no shipped config named {name!r}; shipped: {', '.join(shipped_configs())}")
    return path


def resolve_config_path(path_or_name: str | Path) -> Path:
    """A YAML file that exists, else a shipped config's name (``configs/`` prefix and suffix optional)."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    name = str(p).removeprefix("configs/")
    try:
        return shipped_config_path(name)  # a shipped name wins over a folder of that name (data/default)
    except ConfigError:
        what = f"config {p} is {path_kind(p)}, not a YAML file" if p.exists() else f"config file not found: {p}"
        raise ConfigError(f"{what} (and no shipped config of that name); "
                          f"shipped configs: {', '.join(shipped_configs())}") from None


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # a dataclass's own checks (__post_init__) name the field
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where + ': ' if where else ''}{e}") from e


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {value!r} matches none of {tp}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-Python (YAML-safe) view of a config dataclass."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def load_config(cls: type[T], path_or_name: str | Path) -> T:
    """Read a YAML file (or a shipped config name) into ``cls``; errors name the file and key."""
    path = resolve_config_path(path_or_name)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({e})") from e
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; start from a shipped one "
                          f"({', '.join(shipped_configs())})")
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def apply_overrides(cfg: T, where: str = "command line", **overrides: Any) -> T:
    """A copy of ``cfg`` with the overrides that are not None, validated like a config file.

    One idiom for every command that lets flags (``--steps 100``) override a YAML config: the
    values go through the same type checks and ``__post_init__`` as the file's values did.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return cfg
    try:
        return from_dict(type(cfg), {**to_dict(cfg), **given})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    path = Path(path)
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path
