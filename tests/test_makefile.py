"""The Makefile's choice of torch build: the CPU build on Linux without an NVIDIA GPU, PyPI's otherwise,
and whatever TORCH_INDEX says when it is given."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CPU = "https://download.pytorch.org/whl/cpu"
pytestmark = pytest.mark.skipif(shutil.which("make") is None or platform.system() != "Linux", reason="needs make on Linux")


def choice(tmp_path: Path, gpu: bool | None, *args: str) -> str:
    """What `make torch-choice` prints with a fake nvidia-smi (None: none on PATH) and a fresh environment folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.unlink(missing_ok=True)
    if gpu is not None:
        smi.write_text("#!/bin/sh\n" + ('echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"\n' if gpu else "exit 9\n"))
        smi.chmod(0o755)
    path = [str(bin_dir)] + [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists()]
    env = {**os.environ, "PATH": os.pathsep.join(path), "VIRTUAL_ENV": str(tmp_path / "venv")}
    for name in ("TORCH_INDEX", "TORCH_SPEC", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(name, None)  # under `make test TORCH_INDEX=`, make hands its overrides down through MAKEFLAGS
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "torch-choice", *args], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("gpu", [None, False])
def test_no_gpu_takes_the_cpu_build_and_says_why(tmp_path, gpu):
    line = choice(tmp_path, gpu)
    assert f"--index-url {CPU}" in line and "no NVIDIA GPU" in line


def test_a_gpu_takes_pypi_and_says_why(tmp_path):
    line = choice(tmp_path, True)
    assert "--index-url" not in line and "NVIDIA GPU found" in line


def test_torch_index_given_wins(tmp_path):
    assert "--index-url" not in choice(tmp_path, None, "TORCH_INDEX=")  # empty: PyPI
    assert "--index-url https://example.org/whl" in choice(tmp_path, True, "TORCH_INDEX=https://example.org/whl")
    assert "torch==2.5.1 --index-url" in choice(tmp_path, False, "TORCH_SPEC=torch==2.5.1")


def test_the_kernel_is_registered_inside_the_environment(tmp_path):
    """A user-wide kernel would be taken over by the next checkout's `make install`."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TORCH_INDEX",
                                                           "TORCH_SPEC")}
    env["VIRTUAL_ENV"] = str(tmp_path / "venv")
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "install"], env=env, capture_output=True, text=True,
                         check=True).stdout
    line = next(line for line in out.splitlines() if "ipykernel install" in line)
    assert "--sys-prefix" in line and "--user" not in line and str(ROOT) in line
