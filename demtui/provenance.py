"""Which plugin provided each component of a run: recorded in results.json, spec.toml and report.md.

A run's numbers mean something only together with the code that produced them, so the
engine records, per spec section, the component's name and entry, the plugin, where it
came from (builtin, local, entrypoint), its distribution and version. A resumed run whose
components now come from another plugin is refused; a new version is noted in the log.
Torch-free: `demtui report` rebuilds the table from results.json alone.
"""

from __future__ import annotations

from typing import Any

from demtui.errors import SpecError

SECTIONS = ("model", "dataset", "attack", "defense")


def providers_for(spec: Any, registry: Any) -> dict[str, dict[str, str]]:
    """section → {name, ref, entry, plugin, source, qualifier, distribution, version, entry_point}."""
    from demtui import __version__

    out: dict[str, dict[str, str]] = {}
    for section in SECTIONS:
        choice = getattr(spec, section)
        if choice is None:
            continue
        comp = registry.model_source(choice.name)[0] if section == "model" else registry.get(section, choice.name)
        provider = comp.provider
        info = provider.as_dict() if provider else {"plugin": "", "source": "unregistered"}
        if provider is not None and provider.source == "builtin":
            info.update(distribution="demtui", version=__version__)
        out[section] = {"name": comp.name, "ref": choice.name, "entry": comp.entry, **info}
    return out


def compare(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Warnings for a resumed run (new versions); raises when a component now comes from another plugin."""
    notes = []
    for section, was in saved.items():
        cur = now.get(section)
        if cur is None:
            continue
        if (was.get("plugin"), was.get("distribution")) != (cur.get("plugin"), cur.get("distribution")):
            raise SpecError(
                f"This run's {section} '{was.get('name')}' came from {_who(was)} but now resolves to {_who(cur)}; "
                f"resume with the same plugins installed (or disable the new one in registry.toml), or start a "
                "new run with --out.")
        if was.get("version") != cur.get("version"):
            notes.append(f"{section} '{was.get('name')}' was made with {_who(was)} and continues with version "
                         f"{cur.get('version')}.")
    return notes


def _who(info: dict[str, Any]) -> str:
    dist = f" ({info.get('distribution')} {info.get('version')})" if info.get("distribution") else ""
    return f"plugin '{info.get('plugin')}'{dist}"


def toml_comment(providers: dict[str, dict[str, str]]) -> str:
    """Comment lines for the top of spec.toml (ignored by TOML readers, read by people)."""
    lines = ["# Components of this run and the plugins that provided them (recorded by demtui;",
             "# the same table is under \"providers\" in results.json):"]
    for section, info in providers.items():
        lines.append(f"#   {section:<8} {info['name']:<18} {_who(info)}, {info.get('source')}, {info.get('entry')}")
    return "\n".join(lines) + "\n\n"


def markdown_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """(section, component, plugin, distribution, version, entry) rows for report.md."""
    rows = []
    for section, info in (results.get("providers") or {}).items():
        rows.append((section, f"`{info.get('ref') or info.get('name')}`", f"{info.get('plugin')} ({info.get('source')})",
                     info.get("distribution") or "—", info.get("version") or "—", f"`{info.get('entry')}`"))
    return rows
