"""Training configuration: defaults file + experiment file + ``--set key=value`` overrides (dinov2 style).

Configs are nested dicts read from JSON. ``configs/default.json`` holds every key; an experiment file
(``configs/<name>.json`` or a path) overrides some; ``a.b.c=value`` overrides one (value parsed as JSON, else
kept as a string). Unknown keys are refused so a typo never silently does nothing. The resolved config is saved
as ``config.json`` in the run folder.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or ConfigError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a JSON object")
    return data


def merge(base: dict[str, Any], update: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Recursive merge of ``update`` into a copy of ``base``; keys must already exist in ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        name = f"{where}{key}"
        if key not in out:
            raise ConfigError(f"unknown config key {name!r}")
        if isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge(out[key], value, f"{name}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"a.b=3"`` -> ``{"a": {"b": 3}}`` (value parsed as JSON, else a string)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def experiment_path(experiment: str) -> Path:
    """An experiment name (``configs/<name>.json``) or a path to a JSON file."""
    path = Path(experiment)
    if path.suffix == ".json" and path.is_file():
        return path
    candidate = CONFIG_DIR / f"{experiment}.json"
    if not candidate.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise ConfigError(f"unknown experiment {experiment!r}; known: {', '.join(known)}")
    return candidate


def load_config(experiment: str | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The resolved config: defaults, then the experiment file, then each override in order."""
    cfg = read_json(CONFIG_DIR / "default.json")
    if experiment and experiment != "default":
        cfg = merge(cfg, read_json(experiment_path(experiment)))
        cfg["experiment"] = experiment
    for text in overrides:
        cfg = merge(cfg, parse_override(text))
    return cfg


def save_config(cfg: dict[str, Any], path: Path) -> None:
    """Write the resolved config as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
