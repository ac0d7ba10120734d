"""registry.toml: which plugin modules load and the defaults components start from.

The built-in file ships inside the package; a user's file is merged over it. Lookup
order for the user's file: ``--registry``, ``$DEMTUI_REGISTRY``, ``./registry.toml``,
``$XDG_CONFIG_HOME/demtui/registry.toml`` (first found wins).
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from demtui.errors import SpecError

_SECTIONS = {"plugins", "defaults"}
_PLUGIN_KEYS = {"modules", "disable", "local"}


@dataclass
class RegistryConfig:
    modules: list[str] = field(default_factory=list)
    disable: list[str] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    defaults: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)
    sources: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        return hashlib.sha1(repr((self.modules, self.disable, self.local, self.defaults, str(self.base_dir))).encode()).hexdigest()

    def merge(self, data: dict[str, Any], origin: Path) -> None:
        plugins = data.get("plugins", {})
        for key in plugins:
            if key not in _PLUGIN_KEYS:
                raise SpecError(f"{origin}: unknown key 'plugins.{key}'; use one of {', '.join(sorted(_PLUGIN_KEYS))}.")
        for key in ("modules", "disable"):
            for item in plugins.get(key, []):
                if item not in getattr(self, key):
                    getattr(self, key).append(item)
        for item in plugins.get("local", []):
            ref = item if not item.endswith(".py") or Path(item).is_absolute() else str((origin.parent / item).resolve())
            if ref not in self.local:
                self.local.append(ref)
        for kind, by_name in data.get("defaults", {}).items():
            for name, values in by_name.items():
                self.defaults.setdefault(kind, {}).setdefault(name, {}).update(values)
        self.sources.append(str(origin))


def builtin_registry_path() -> Path:
    return Path(str(resources.files("demtui") / "registry.toml"))


def user_registry_path(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise SpecError(f"Registry file {path} {what}; check the --registry path.")
        return path
    env = os.environ.get("DEMTUI_REGISTRY")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise SpecError(f"DEMTUI_REGISTRY points to {path}, which does not exist; fix or unset it.")
        return path
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    for candidate in (Path.cwd() / "registry.toml", config_home / "demtui" / "registry.toml"):
        if candidate.is_file():
            return candidate
    return None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML ({exc}); fix the file and try again.") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 TOML.") from None
    except OSError as exc:
        raise SpecError(f"Cannot read {path} ({exc.strerror}).") from None
    unknown = set(data) - _SECTIONS
    if unknown:
        raise SpecError(f"{path}: unknown section '{sorted(unknown)[0]}'; a registry has only [plugins] and [defaults.*].")
    return data


def load_config(explicit: str | Path | None = None) -> RegistryConfig:
    builtin = builtin_registry_path().resolve()
    config = RegistryConfig(base_dir=builtin.parent)
    config.merge(read_toml(builtin), builtin)
    user = user_registry_path(explicit)
    if user is not None and user.resolve() != builtin:
        config.merge(read_toml(user), user.resolve())
        config.base_dir = user.resolve().parent
    return config
