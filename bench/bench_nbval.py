"""Time each notebook under nbval in the smoke profile, one pytest process per notebook, as ``make test``
runs them (the README's ``smoke`` column).

    python bench/bench_nbval.py                       # every notebook
    python bench/bench_nbval.py 05b_tokenizers.ipynb  # some

Prints each notebook's wall time (pytest's start included) and whether it passed, then the total;
exits 1 if any failed. Run it on a quiet machine: nothing else should compete for the cores.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", help="file names under notebooks/ (default: all)")
    args = p.parse_args(argv)
    paths = [ROOT / "notebooks" / n for n in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    env = {**os.environ, "LM_STEPS_PROFILE": "smoke"}
    total, failed = 0.0, []
    for path in paths:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", str(path)], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        total += wall
        ok = proc.returncode == 0
        if not ok:
            failed.append(path.name)
        print(f"{path.name:30s} {'ok' if ok else 'FAILED'}  nbval {wall:6.1f} s", flush=True)
    print(f"smoke under nbval: {len(paths)} notebooks, {total:.1f} s in all" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
