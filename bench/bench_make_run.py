"""Time ``make run``'s work notebook by notebook: execute each with nbconvert, then render it to HTML.

    LM_STEPS_PROFILE=gpu python bench/bench_make_run.py            # the whole course on one GPU
    LM_STEPS_PROFILE=smoke python bench/bench_make_run.py --notebooks 01_bigram_counting.ipynb

Does what the Makefile's ``run`` target does after ``install`` and ``data`` (which need a network
or a prepared environment): for every notebook under ``notebooks/`` in order, ``jupyter nbconvert
--to notebook --execute`` into ``--output-dir``, then ``--to html``. Prints each notebook's
execution and rendering time, the total, and any notebook that failed (then exits 1). The profile
is ``LM_STEPS_PROFILE`` (unset: gpu with CUDA, else cpu), as for ``make run``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from lm_steps import get_profile

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=None, help="file names under notebooks/ (default: all)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "build" / "bench-run")
    parser.add_argument("--limit-min", type=float, default=15.0, help="the time the whole run should stay within")
    args = parser.parse_args(argv)
    profile = get_profile()
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.notebooks:
        paths = [ROOT / "notebooks" / n for n in args.notebooks]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise SystemExit(f"no such notebooks: {missing}")
    nb_dir, html_dir = args.output_dir / "notebooks", args.output_dir / "html"
    nb_dir.mkdir(parents=True, exist_ok=True)
    html_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LM_STEPS_PROFILE": profile}
    jupyter = [sys.executable, "-m", "jupyter", "nbconvert"]
    rows, failed = [], []
    t_all = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        run = subprocess.run(jupyter + ["--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=-1",
                                        "--output-dir", str(nb_dir), str(path)], env=env, capture_output=True, text=True)
        exec_s = time.perf_counter() - t0
        html_s = 0.0
        if run.returncode:
            failed.append(f"{path.name}: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
        else:
            t1 = time.perf_counter()
            subprocess.run(jupyter + ["--to", "html", "--output-dir", str(html_dir), str(nb_dir / path.name)],
                           env=env, capture_output=True, check=False)
            html_s = time.perf_counter() - t1
        rows.append((path.name, exec_s, html_s, not run.returncode))
        print(f"{path.name:40s} {'ok' if not run.returncode else 'FAILED':6s} execute {exec_s:7.1f} s  html {html_s:5.1f} s",
              flush=True)
    total = time.perf_counter() - t_all
    print(f"profile {profile}: {len(rows)} notebooks, {total:.0f} s = {total / 60:.1f} min in all "
          f"({'within' if total <= 60 * args.limit_min else 'over'} {args.limit_min:g} min)")
    if failed:
        print("failed:\n  " + "\n  ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
