"""`demtui plugins --check`: every problem of every plugin, not just the first.

Three passes, each reporting everything it finds:

1. the problems the registry recorded while loading (imports, hooks, records, names);
2. the light-import rule: each plugin is imported, and its component hooks called, in a
   *fresh* interpreter, which must not end up with torch (or torchvision, timm) loaded —
   hooks run on every `demtui` command, so a heavy import there makes the CLI and the TUI's
   catalogue slow for everyone. The first line of plugin code that pulled one in is named;
3. the heavy side: every component's entry imports and is callable, and every wrapping
   defense has its ``rebuild`` (this pass imports torch, in this process, after the others).

:func:`light_import_problems` is also what ``demtui.testing.check_light_import`` runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from demtui.errors import DemtuiError

HEAVY = ("torch", "torchvision", "timm")

_CHILD = r'''
import json, sys, traceback
HEAVY = {heavy!r}
first = {{}}

class Spy:
    """Notes where each heavy module was first imported from (the innermost non-import frame)."""
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in HEAVY and top not in first:
            stack = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename
                     and not f.filename.startswith("<")]
            first[top] = f"{{stack[-1].filename}}:{{stack[-1].lineno}}" if stack else "?"
        return None

sys.meta_path.insert(0, Spy())
args = json.loads(sys.argv[1])
from demtui import hookspecs
from demtui.params import deferred_checks
error = ""
try:
    if args["source"] == "local":
        from pathlib import Path
        from demtui.plugin_sources import import_local
        plugin = import_local(args["ref"], Path(args["base_dir"]))
    else:
        import importlib
        module, _, attr = args["ref"].partition(":")
        plugin = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            plugin = getattr(plugin, part)
    with deferred_checks():
        for hook in hookspecs.COMPONENT_HOOKS:
            fn = getattr(plugin, hook, None)
            if callable(fn):
                fn()
except Exception as exc:
    error = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps({{"heavy": {{m: first.get(m, "?") for m in HEAVY if m in sys.modules}}, "error": error}}))
'''


def _target(record: Any) -> tuple[str, str] | None:
    """(source, what to import) for a plugin, or None when it is not loaded."""
    if record.status == "disabled":
        return None
    if record.source == "entrypoint":
        return "entrypoint", record.entry_point.partition("=")[2].strip() or record.module
    return record.source, record.name


def light_import_problems(source: str, ref: str, name: str, base_dir: str = ".") -> list[str]:
    """Import a plugin and call its hooks in a fresh interpreter; a sentence per heavy module it loaded."""
    code = _CHILD.format(heavy=HEAVY)
    args = json.dumps({"source": source, "ref": ref, "base_dir": base_dir})
    proc = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, timeout=300)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"plugin '{name}' could not be imported in a fresh interpreter ({tail})."]
    out = []
    if result["error"]:
        out.append(f"plugin '{name}' fails when imported alone in a fresh interpreter: {result['error']}.")
    for module, where in result["heavy"].items():
        out.append(f"plugin '{name}' imports {module} when demtui loads it (first at {where}); move that import "
                   "into the entry callable's module, which is imported only when a run uses the component.")
    return out


def check_registry(registry: Any, jobs: int = 4) -> list[str]:
    """Every problem of every plugin in ``registry``: load problems, light-import rule, entries."""
    problems = [p for record in registry.plugins for p in record.problems]
    targets = [(r, _target(r)) for r in registry.plugins if r.status != "failed"]
    targets = [(r, t) for r, t in targets if t is not None]
    base_dir = str(registry.config.base_dir)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        found = pool.map(lambda rt: light_import_problems(rt[1][0], rt[1][1], rt[0].name, base_dir), targets)
        for items in found:
            problems.extend(items)
    problems.extend(entry_problems(registry))
    return problems


def entry_problems(registry: Any) -> list[str]:
    """Every component's code imports and is callable; every wrapping defense has its rebuild."""
    from demtui.components import Defense

    out = []
    for kind, by_name in registry.names_table.providers.items():
        for comps in by_name.values():
            for comp in comps:
                if not comp.entry:
                    continue
                try:
                    comp.load()
                    if isinstance(comp, Defense) and comp.wraps:
                        comp.load_rebuild()
                except DemtuiError as exc:
                    out.append(str(exc))
    return out
