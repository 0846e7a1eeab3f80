"""Apache Kafka 4.x, single-node KRaft (broker + controller), from its Maven Central artifacts."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path

from infra.stack.artifacts import cached, maven_runtime_classpath, require_tool
from infra.stack.base import Service, StackContext, StackError, run_as_service_user

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
NODE_ID = 1

LOG4J2_YAML = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: WARN
"""


def new_cluster_id(random_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A KRaft cluster id (URL-safe base64 of a random UUID) that never starts with ``-``.

    An id starting with ``-`` is read as an option by ``StorageTool format`` (about 1 in 64 of
    random UUIDs); Kafka's own generator redraws those too.
    """
    while True:
        candidate = base64.urlsafe_b64encode(random_uuid().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


class Kafka(Service):
    name = "kafka"
    stop_timeout_s = 60.0

    @property
    def version(self) -> str:
        return KAFKA_VERSION

    def port(self, ctx: StackContext) -> int:
        return int(ctx.settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])

    def _home(self, ctx: StackContext) -> Path:
        return ctx.cache_dir / "kafka" / KAFKA_VERSION

    def install(self, ctx: StackContext) -> None:
        require_tool(
            "java", "install a Java 17+ runtime (Debian package `openjdk-17-jre-headless`)"
        )
        cached(
            self._home(ctx),
            lambda work: maven_runtime_classpath(
                f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
                [f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}"],
                work,
            ),
        )

    def _config_dir(self, ctx: StackContext) -> Path:
        return ctx.service_dir(self.name) / "config"

    def prepare(self, ctx: StackContext) -> None:
        home = ctx.service_dir(self.name)
        config = self._config_dir(ctx)
        config.mkdir(parents=True, exist_ok=True)
        host, port = ctx.settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
        controller = f"{host}:{ctx.settings.kafka_controller_port}"
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir(ctx)),
            "num.partitions": str(ctx.settings.kafka_partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
        }
        (config / "server.properties").write_text(
            "".join(f"{key}={value}\n" for key, value in properties.items())
        )
        (config / "log4j2.yaml").write_text(LOG4J2_YAML)
        ctx.own(home)
        if not (self.data_dir(ctx) / "meta.properties").exists():
            cluster_id = new_cluster_id()
            run_as_service_user(
                ctx,
                [
                    *self._java(ctx),
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(config / "server.properties"),
                ],
            )

    def _java(self, ctx: StackContext) -> list[str]:
        java = require_tool("java", "install a Java 17+ runtime")
        return [
            java,
            "-cp",
            str(self._home(ctx) / "lib" / "*"),
            f"-Dlog4j2.configurationFile={self._config_dir(ctx) / 'log4j2.yaml'}",
        ]

    def command(self, ctx: StackContext) -> list[str]:
        java, *rest = self._java(ctx)
        return [
            java,
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            *rest,
            "kafka.Kafka",
            str(self._config_dir(ctx) / "server.properties"),
        ]

    def environment(self, ctx: StackContext) -> dict[str, str]:
        return {**super().environment(ctx), "HOME": str(ctx.service_dir(self.name))}

    def check(self, ctx: StackContext) -> None:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=ctx.settings.kafka_bootstrap,
            client_id="iconmarket-stack-probe",
            request_timeout_ms=3000,
        )
        try:
            cluster = admin.describe_cluster()
        finally:
            admin.close()
        node_ids = [broker["broker_id"] for broker in cluster.get("brokers", [])]
        if NODE_ID not in node_ids:
            raise StackError(f"kafka metadata lists brokers {node_ids}, not node {NODE_ID}")
