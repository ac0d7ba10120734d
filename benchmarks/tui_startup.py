"""How fast the TUI opens: time to the first frame, and until Compose is usable.

Starts the real app (bare `demtui`, as a user types it) in a pseudo-terminal of the given
size and reads what it draws. "First paint" is the first frame that shows the tab bar
(`Compose`); "Compose usable" is the frame whose status line says the quickstart spec is
`✓ valid` (the forms are built and resolved, so typing and Ctrl+R work). Median of
repeated runs, each a fresh interpreter; also the import time of `demtui.tui.app` alone.

    OMP_NUM_THREADS=1 uv run --no-sync python benchmarks/tui_startup.py --repeats 7

    ... --baseline /path/to/older/checkout   # side by side, alternating runs

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ANSI = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|P[^\x1b]*\x1b\\|[@-Z\\-_])")
ENTRY = [sys.executable, "-c", "from demtui.cli import main; main()"]


def one_start(cols: int, rows: int, timeout: float = 60.0, source: str | None = None) -> tuple[float, float]:
    """(seconds to first paint, seconds to usable Compose) of one fresh start."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    with tempfile.TemporaryDirectory() as cwd:
        t0 = time.perf_counter()
        proc = subprocess.Popen(ENTRY, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, close_fds=True,
                                env=_env(source, TERM="xterm-256color", DEMTUI_RUNS=os.path.join(cwd, "runs")))
        os.close(slave)
        seen, first, usable = b"", None, None
        try:
            while time.perf_counter() - t0 < timeout and usable is None:
                if select.select([master], [], [], 0.02)[0]:
                    try:
                        chunk = os.read(master, 1 << 16)
                    except OSError:
                        break
                    seen += chunk
                    text = ANSI.sub(b"", seen)
                    now = time.perf_counter() - t0
                    if first is None and b"Compose" in text:
                        first = now
                    if first is not None and "✓ valid".encode() in text:
                        usable = now
            os.write(master, b"\x11")  # Ctrl+Q
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
    if first is None or usable is None:
        raise SystemExit(f"the app did not {'paint' if first is None else 'become usable'} within {timeout:.0f} s")
    return first, usable


def _env(source: str | None, **extra: str) -> dict[str, str]:
    """This checkout, or another source tree (``--baseline``) put first on PYTHONPATH."""
    env = {**os.environ, **extra}
    # Bytecode is cached as after any normal install (a sandbox may set PYTHONDONTWRITEBYTECODE,
    # and then every start compiles Textual from source: about a second on the 2-core machine).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if source:
        env["PYTHONPATH"] = os.path.abspath(source) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def import_seconds(source: str | None = None) -> float:
    code = "import time; t=time.perf_counter(); import demtui.tui.app; print(time.perf_counter()-t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env=_env(source), cwd=tempfile.gettempdir()).stdout)


def row(label: str, cols: int, rows: int, starts: list[tuple[float, float]], imports: list[float]) -> str:
    paint = [s[0] for s in starts]
    usable = [s[1] for s in starts]
    return (f"| {label} | {cols}×{rows} | {len(starts)} | {statistics.median(imports):.2f} | "
            f"{statistics.median(paint):.2f} ({min(paint):.2f}–{max(paint):.2f}) | "
            f"{statistics.median(usable):.2f} ({min(usable):.2f}–{max(usable):.2f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", default="80x24", help="terminal COLSxROWS")
    parser.add_argument("--baseline", help="another source tree (holding demtui/) to time side by side, "
                                           "alternating runs so both see the same machine load")
    args = parser.parse_args()
    cols, rows = (int(v) for v in args.size.split("x"))
    sources = {"this checkout": None, **({"baseline": args.baseline} if args.baseline else {})}
    for source in sources.values():
        one_start(cols, rows, source=source)  # warm the file cache (the first import compiles .pyc)
    starts: dict[str, list[tuple[float, float]]] = {k: [] for k in sources}
    imports: dict[str, list[float]] = {k: [] for k in sources}
    for _ in range(args.repeats):
        for label, source in sources.items():
            starts[label].append(one_start(cols, rows, source=source))
            imports[label].append(import_seconds(source))
    print("| code | terminal | repeats | import demtui.tui.app (s) | first paint (s) | Compose usable (s) |")
    print("|---|---|---|---|---|---|")
    for label in sources:
        print(row(label, cols, rows, starts[label], imports[label]))
    if args.baseline:
        ratio = lambda i: (statistics.median(s[i] for s in starts["this checkout"])  # noqa: E731
                           / statistics.median(s[i] for s in starts["baseline"]))
        print(f"\nthis checkout / baseline: first paint {ratio(0):.2f}×, Compose usable {ratio(1):.2f}×")


if __name__ == "__main__":
    main()
