"""The project installs as a wheel and works from outside the checkout: every subpackage and
data file it reads at run time is in the wheel (an editable install hides a missing one).

The wheel is built from this checkout, installed with its dependencies into a scratch venv
(pip's cache makes that quick after `make install`), and run from a directory outside the
checkout with nothing of the checkout on its path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.settings import REPO_ROOT

pytestmark = pytest.mark.timeout(900)


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-4000:]}"
    return done.stdout


def test_the_wheel_installed_elsewhere_runs_and_generates_the_published_contract(
    tmp_path: Path,
) -> None:
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Built from a copy of the tracked files: a build in the checkout leaves build/ behind,
    # which ruff and mypy would then read as a second copy of every module.
    source = tmp_path / "source"
    tracked = _run("git", "ls-files", "-z", cwd=REPO_ROOT).split("\0")
    for name in filter(None, tracked):
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source, cwd=tmp_path)
    [wheel] = dist.glob("iconmarket-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("projections/synonyms.txt", "pipelines/schemas/import-manifest.json"):
        assert data in names, data
    for package in ("commands/handlers", "commands/payments", "api/controllers", "infra/audit"):
        assert f"{package}/__init__.py" in names, package
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    # Nothing of the checkout on the path: the installed package alone.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = _run(
        python,
        "-c",
        "import pipelines, projections; print(pipelines.__file__)",
        cwd=elsewhere,
        env=env,
    )
    assert str(venv) in where, where
    usage = _run(venv / "bin" / "iconmarket", "--help", cwd=elsewhere, env=env)
    assert "schema" in usage
    assert "stack" in usage
    # The installed code generates exactly the published contract (_run asserts exit 0).
    _run(
        venv / "bin" / "iconmarket",
        "schema",
        "export",
        "--check",
        "--root",
        REPO_ROOT,
        cwd=elsewhere,
        env=env,
    )
    manifest = _run(
        python,
        "-c",
        "from pipelines.zip_import import MANIFEST_SCHEMA_PATH as p; print(p.read_text()[:200])",
        cwd=elsewhere,
        env=env,
    )
    assert '"$id"' in manifest
