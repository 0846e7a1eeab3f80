"""Fetch and build the stack's artifacts into the cache dir, atomically and only once."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from infra.stack.base import StackError, run, which_or_none

DONE_MARK = ".installed"


def cached(target: Path, build: Callable[[Path], None]) -> Path:
    """Return ``target``, building it first (into a temp dir renamed into place) if absent."""
    if (target / DONE_MARK).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o755)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(work)
        (work / DONE_MARK).write_text("ok\n")
        os.chmod(work, 0o755)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def require_tool(name: str, hint: str) -> str:
    path = which_or_none(name)
    if path is None:
        raise StackError(f"`{name}` is needed to install the stack: {hint}")
    return path


def maven_copy(artifacts: list[str], into: Path) -> None:
    """Copy exact Maven Central artifacts (``group:artifact:version[:type]``) into ``into``."""
    mvn = require_tool("mvn", "install Maven (Debian package `maven`)")
    into.mkdir(parents=True, exist_ok=True)
    for coords in artifacts:
        parts = coords.split(":")
        item = ":".join([*parts[:3], parts[3] if len(parts) > 3 else "jar"])
        run([mvn, "-q", "-B", "dependency:copy", f"-Dartifact={item}", f"-DoutputDirectory={into}"])


def maven_runtime_classpath(artifact: str, extra: list[str], into: Path) -> None:
    """Resolve ``artifact`` with its runtime dependencies into ``into`` (one jar each)."""
    mvn = require_tool("mvn", "install Maven (Debian package `maven`)")
    _group, name, version = artifact.split(":")
    deps = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in (c.split(":") for c in [artifact, *extra])
    )
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>iconmarket.stack</groupId><artifactId>{name}-runtime</artifactId>"
        f"<version>{version}</version><dependencies>{deps}</dependencies></project>"
    )
    (into / "pom.xml").write_text(pom)
    run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={into / 'lib'}",
        ],
        cwd=into,
    )


def go_install(module: str, version: str, into: Path, *, ldflags: str = "") -> None:
    """``go install module@version`` with the binary placed in ``into`` (pure Go: cgo off);
    ``ldflags`` are passed to the linker (``-X pkg.Var=value`` stamps a version)."""
    go = require_tool("go", "install Go (https://go.dev/dl or Debian package `golang`)")
    env = {**os.environ, "GOBIN": str(into), "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
    flags = [f"-ldflags={ldflags}"] if ldflags else []
    run([go, "install", *flags, f"{module}@{version}"], env=env)
