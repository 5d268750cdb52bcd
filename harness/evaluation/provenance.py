"""Provenance of a run: the project's git commit, library versions and the device."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from ftbench.harness.core.records import Provenance

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRACKED_PACKAGES = (
    "ftbench",
    "torch",
    "transformers",
    "lm_eval",
    "peft",
    "trl",
    "bitsandbytes",
    "accelerate",
    "datasets",
)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def package_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide results."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect_provenance(device: str) -> Provenance:
    """Provenance for a run on ``device``."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    name = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    return Provenance(
        git_commit=commit,
        git_dirty=bool(status) if status is not None and commit else None,
        versions=package_versions(),
        python=sys.version.split()[0],
        platform=platform.platform(),
        device=device,
        device_name=name,
        torch_threads=torch.get_num_threads(),
    )
