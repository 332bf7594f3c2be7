"""Time ``make run``'s work notebook by notebook: execute each with nbconvert, then render it to HTML.

    LM_STEPS_PROFILE=gpu python bench/bench_make_run.py            # the whole course on one GPU
    LM_STEPS_PROFILE=smoke python bench/bench_make_run.py --notebooks 01_counting_bigram.ipynb
    LM_STEPS_PROFILE=smoke python bench/bench_make_run.py --nbval  # each under nbval, as `make test` runs them

Does what the Makefile's ``run`` target does after ``install`` and ``data`` (which need a network
or a prepared environment): for every notebook under ``notebooks/`` in order, ``jupyter nbconvert
--to notebook --execute`` into ``--output-dir``, then ``--to html``. Prints each notebook's
execution and rendering time and peak resident memory (Unix; read as Linux's KiB), the total, and
any notebook that failed (then exits 1). The profile is ``LM_STEPS_PROFILE`` (unset: gpu with CUDA,
else cpu), as for ``make run``. ``--nbval`` runs each notebook under nbval instead (one ``pytest``
process each, its start included; no HTML): the README's ``smoke`` column.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lm_steps import get_profile

ROOT = Path(__file__).resolve().parent.parent


def run_measured(cmd: list[str], env: dict) -> tuple[int, str, float]:
    """Run ``cmd``; return its exit status, its standard error and the peak resident memory in MB of
    the largest process it ran (the notebook's kernel included: nbconvert waits for it), from wait4."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return proc.returncode, err.read(), usage.ru_maxrss / 1024  # Linux: ru_maxrss in KiB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=None, help="file names under notebooks/ (default: all)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "build" / "bench-run")
    parser.add_argument("--limit-min", type=float, default=None,
                        help="the time the whole run should stay within (default: smoke 10, cpu 30, gpu 15 minutes)")
    parser.add_argument("--nbval", action="store_true", help="each notebook under nbval (pytest) instead of nbconvert")
    args = parser.parse_args(argv)
    profile = get_profile()
    if args.limit_min is None:
        args.limit_min = {"smoke": 10.0, "cpu": 30.0, "gpu": 15.0}[profile]
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
    sock = tempfile.mkdtemp(prefix="lm-steps-kernel-")  # an absolute path: the kernel starts in notebooks/
    t_all = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pytest", "-q", str(path)] if args.nbval else jupyter + [
            "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=-1", "--KernelManager.transport=ipc",
            f"--KernelManager.ip={sock}/kernel", "--output-dir", str(nb_dir), str(path)]
        returncode, stderr, peak_mb = run_measured(cmd, env)
        exec_s = time.perf_counter() - t0
        html_s = 0.0
        if returncode:
            failed.append(f"{path.name}: {stderr.strip().splitlines()[-1] if stderr.strip() else returncode}")
        elif not args.nbval:
            t1 = time.perf_counter()
            subprocess.run(jupyter + ["--to", "html", "--output-dir", str(html_dir), str(nb_dir / path.name)],
                           env=env, capture_output=True, check=False)
            html_s = time.perf_counter() - t1
        rows.append((path.name, exec_s, html_s, not returncode))
        print(f"{path.name:40s} {'ok' if not returncode else 'FAILED':6s} {'nbval' if args.nbval else 'execute'} "
              f"{exec_s:7.1f} s  html {html_s:5.1f} s"
              f"  peak memory {peak_mb:6.0f} MB", flush=True)
    total = time.perf_counter() - t_all
    shutil.rmtree(sock, ignore_errors=True)
    print(f"profile {profile}: {len(rows)} notebooks, {total:.0f} s = {total / 60:.1f} min in all "
          f"({'within' if total <= 60 * args.limit_min else 'over'} {args.limit_min:g} min)")
    if failed:
        print("failed:\n  " + "\n  ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
