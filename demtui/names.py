"""Component names: who owns a bare name, and qualified ``name@plugin`` references.

The rule never depends on the order plugins were installed or listed:

- a name only one plugin provides is that plugin's;
- a name a built-in provides stays the built-in's; a third party providing it too is
  reachable only as ``name@plugin`` (and told so);
- a name two or more third-party plugins provide belongs to none of them: a bare
  reference is an error naming every provider and the two ways to choose (a qualified
  reference, or ``[plugins] disable`` in registry.toml).

``@`` separates the qualifier because it never occurs in component names nor in model
references (``family:arch``): ``torchvision:resnet50@builtin`` and ``fgsm-uap@example``
both parse. A qualifier is a plugin's qualifier (``builtin``, an entry-point name, a local
module or file stem), its full plugin name, or its distribution name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from demtui.components import KINDS, QUALIFIER, Component
from demtui.errors import UnknownComponentError, did_you_mean


def split_ref(ref: str) -> tuple[str, str]:
    """``"fgsm-uap@example"`` → ``("fgsm-uap", "example")``; no qualifier → ``(ref, "")``."""
    name, sep, qualifier = ref.rpartition(QUALIFIER)
    return (name, qualifier) if sep else (ref, "")


def _norm(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text.strip().lower())


def matches(component: Component, qualifier: str) -> bool:
    provider = component.provider
    if provider is None:
        return False
    wanted = _norm(qualifier)
    return wanted in {_norm(v) for v in (provider.qualifier, provider.plugin, provider.distribution) if v}


def plural(kind: str) -> str:
    return {"layers": "layers", "model": "models", "dataset": "datasets", "attack": "attacks",
            "defense": "defenses", "executor": "executors"}.get(kind, kind + "s")


class NameTable:
    """Every accepted record by kind and name (all providers), and the listing derived from them."""

    def __init__(self) -> None:
        self.providers: dict[str, dict[str, list[Component]]] = {kind: {} for kind in KINDS}
        #: kind → reference → component: bare names that resolve to one provider, and the
        #: qualified references of the rest. What `demtui list`, the TUI and sweeps show.
        self.listed: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}

    def add(self, component: Component) -> None:
        self.providers.setdefault(component.kind, {}).setdefault(component.name, []).append(component)

    def settle(self) -> dict[str, list[str]]:
        """Decide every bare name; returns plugin name → problems to report on it."""
        problems: dict[str, list[str]] = {}
        for kind, by_name in self.providers.items():
            listed = self.listed.setdefault(kind, {})
            listed.clear()
            for name, comps in by_name.items():
                if len(comps) == 1:
                    listed[name] = comps[0]
                    continue
                builtins = [c for c in comps if c.provider and c.provider.source == "builtin"]
                if len(builtins) == 1:
                    listed[name] = builtins[0]
                    for c in comps:
                        if c is not builtins[0]:
                            listed[c.ref] = c
                            problems.setdefault(c.provider.plugin, []).append(  # type: ignore[union-attr]
                                f"{kind} '{name}' is also a built-in, so the bare name means the built-in; "
                                f"this plugin's is '{c.ref}' (or rename it).")
                    continue
                for c in comps:
                    listed[c.ref] = c
                    others = " and ".join(f"'{o.ref}'" for o in comps if o is not c)
                    problems.setdefault(c.provider.plugin, []).append(  # type: ignore[union-attr]
                        f"{kind} '{name}' is also provided by {others}; a bare '{name}' is ambiguous, so refer "
                        f"to '{c.ref}' or disable one plugin in registry.toml ([plugins] disable).")
        return problems

    # -- lookups ---------------------------------------------------------------------------
    def resolve(self, kind: str, ref: str) -> Component:
        """The one component ``ref`` names, or an error sentence that says how to choose."""
        name, qualifier = split_ref(ref)
        comps = self.providers.get(kind, {}).get(name, [])
        if qualifier:
            hits = [c for c in comps if matches(c, qualifier)]
            if len(hits) == 1:
                return hits[0]
            if not comps:
                raise self._unknown(kind, name)
            if not hits:
                raise UnknownComponentError(
                    f"No {kind} '{name}' comes from a plugin called '{qualifier}'; it is provided by "
                    + _choices(comps) + ".")
            raise UnknownComponentError(f"'{ref}' still matches several plugins: {_choices(hits)}; use the "
                                        "plugin's full name after '@'.")
        found = self.listed.get(kind, {}).get(name)
        if found is not None:
            return found
        if len(comps) > 1:
            disable = comps[-1].provider.plugin if comps[-1].provider else "PLUGIN"
            raise UnknownComponentError(
                f"{kind.capitalize()} '{name}' is provided by {len(comps)} plugins ({_describe(comps)}); choose "
                f"one with {_choices(comps, ' or ')} (in a spec, a flag or 'demtui show'), or disable one in "
                f"registry.toml: [plugins] disable = [\"{disable}\"].")
        raise self._unknown(kind, name)

    def _unknown(self, kind: str, name: str) -> UnknownComponentError:
        return UnknownComponentError(
            f"Unknown {kind} '{name}'." + did_you_mean(name, self.providers.get(kind, {}))
            + f" Run 'demtui list {plural(kind)}' to see them all.")

    def every(self, name: str) -> list[Component]:
        """Every component, of any kind, that ``name`` (bare or qualified) could mean."""
        bare, qualifier = split_ref(name)
        out = []
        for by_name in self.providers.values():
            out += [c for c in by_name.get(bare, []) if not qualifier or matches(c, qualifier)]
        return out

    def ref_of(self, component: Component) -> str:
        """The reference a listing shows: the bare name when it means this component."""
        return component.name if self.listed.get(component.kind, {}).get(component.name) is component else component.ref


def _describe(comps: Iterable[Component]) -> str:
    return ", ".join(c.provider.describe() if c.provider else "an unregistered record" for c in comps)


def _choices(comps: Iterable[Component], sep: str = ", ") -> str:
    return sep.join(f"'{c.ref}'" for c in comps)
