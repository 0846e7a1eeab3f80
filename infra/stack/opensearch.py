"""OpenSearch 2.x from Maven Central's integ-test-zip, plus the analysis-common module.

The integ-test-zip carries only the transport module; the catalog needs edge n-grams and
synonyms, which live in the `analysis-common` module (published to Maven Central as a jar), so the
install adds it as a module with a descriptor of ours.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from infra.stack.artifacts import cached, maven_copy, require_tool
from infra.stack.base import Service, StackContext, StackError

OPENSEARCH_VERSION = "2.19.3"

MODULE_DESCRIPTOR = """\
description=Built-in analyzers (edge n-grams, synonyms, ...), added by the iconmarket stack.
version={version}
name=analysis-common
classname=org.opensearch.analysis.common.CommonAnalysisPlugin
java.version=11
opensearch.version={version}
custom.foldername=analysis-common
has.native.controller=false
"""


def _build(work: Path) -> None:
    downloads = work / "downloads"
    maven_copy(
        [
            f"org.opensearch.distribution.integ-test-zip:opensearch:{OPENSEARCH_VERSION}:zip",
            f"org.opensearch.plugin:analysis-common:{OPENSEARCH_VERSION}",
        ],
        downloads,
    )
    with zipfile.ZipFile(downloads / f"opensearch-{OPENSEARCH_VERSION}.zip") as archive:
        for info in archive.infolist():
            extracted = Path(archive.extract(info, work))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(extracted, mode)
    home = work / f"opensearch-{OPENSEARCH_VERSION}"
    module = home / "modules" / "analysis-common"
    module.mkdir(parents=True)
    shutil.copy(downloads / f"analysis-common-{OPENSEARCH_VERSION}.jar", module)
    (module / "plugin-descriptor.properties").write_text(
        MODULE_DESCRIPTOR.format(version=OPENSEARCH_VERSION)
    )
    shutil.rmtree(downloads)
    for root, dirs, files in os.walk(work):
        for item in dirs:
            os.chmod(os.path.join(root, item), 0o755)
        for item in files:
            path = os.path.join(root, item)
            os.chmod(path, os.stat(path).st_mode | 0o444)


class OpenSearch(Service):
    name = "opensearch"
    stop_timeout_s = 60.0

    @property
    def version(self) -> str:
        return OPENSEARCH_VERSION

    def port(self, ctx: StackContext) -> int:
        return int(ctx.settings.opensearch_url.rstrip("/").rsplit(":", 1)[1])

    def _home(self, ctx: StackContext) -> Path:
        return (
            ctx.cache_dir / "opensearch" / OPENSEARCH_VERSION / f"opensearch-{OPENSEARCH_VERSION}"
        )

    def install(self, ctx: StackContext) -> None:
        require_tool(
            "java", "install a Java 17+ runtime (Debian package `openjdk-17-jre-headless`)"
        )
        cached(ctx.cache_dir / "opensearch" / OPENSEARCH_VERSION, _build)

    def _config_dir(self, ctx: StackContext) -> Path:
        return ctx.service_dir(self.name) / "config"

    def prepare(self, ctx: StackContext) -> None:
        home = ctx.service_dir(self.name)
        config = self._config_dir(ctx)
        logs = home / "logs"
        if not config.exists():
            shutil.copytree(self._home(ctx) / "config", config)
        logs.mkdir(parents=True, exist_ok=True)
        jvm_options = (self._home(ctx) / "config" / "jvm.options").read_text()
        (config / "jvm.options").write_text(
            jvm_options.replace("HeapDumpPath=data", f"HeapDumpPath={self.data_dir(ctx)}").replace(
                "logs/", f"{logs}/"
            )
        )
        self.data_dir(ctx).mkdir(parents=True, exist_ok=True)
        host = ctx.settings.opensearch_url.split("//", 1)[1].rsplit(":", 1)[0]
        (config / "opensearch.yml").write_text(
            "cluster.name: iconmarket\n"
            "node.name: iconmarket-1\n"
            f"network.host: {host}\n"
            f"http.port: {self.port(ctx)}\n"
            f"transport.port: {ctx.settings.opensearch_transport_port}\n"
            "discovery.type: single-node\n"
            f"path.data: {self.data_dir(ctx)}\n"
            f"path.logs: {logs}\n"
            "cluster.routing.allocation.disk.threshold_enabled: false\n"
            "action.auto_create_index: false\n"
        )
        ctx.own(home)

    def command(self, ctx: StackContext) -> list[str]:
        return [str(self._home(ctx) / "bin" / "opensearch")]

    def environment(self, ctx: StackContext) -> dict[str, str]:
        java = require_tool("java", "install a Java 17+ runtime")
        java_home = Path(os.path.realpath(java)).parent.parent
        heap = ctx.settings.opensearch_heap
        return {
            **super().environment(ctx),
            "OPENSEARCH_JAVA_HOME": str(java_home),
            "OPENSEARCH_PATH_CONF": str(self._config_dir(ctx)),
            "OPENSEARCH_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
            "HOME": str(ctx.service_dir(self.name)),
        }

    def check(self, ctx: StackContext) -> None:
        import httpx

        response = httpx.get(
            f"{ctx.settings.opensearch_url}/_cluster/health",
            params={"wait_for_status": "yellow", "timeout": "2s"},
            timeout=4,
        )
        status = response.json().get("status") if response.status_code == 200 else None
        if status not in {"green", "yellow"}:
            raise StackError(f"opensearch cluster health is {status or response.status_code}")
