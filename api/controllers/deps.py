"""The dependency every controller takes: the process's container."""

from __future__ import annotations

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from infra.bootstrap import Container

ContainerDep = NamedDependency[SkipValidation[Container]]
