"""The Kubernetes manifests agree with each other and with the code: the status CronJob
asks each service where its Service and Deployment really listen, on the broker the
services use, with options `vtp status` accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
import yaml

from shared.kafka import topic_configs
from shared.topics import ALL_TOPICS
from vtp.operations.status_cli import status_command

MANIFESTS = Path(__file__).parents[3] / "deploy" / "kubernetes"


def _objects() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def _named(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _objects() if o["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = container
    return found


def _options(command: list[str], name: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == name]


def test_every_deployment_is_probed_on_the_port_it_listens_on() -> None:
    for name, deployment in _named("Deployment").items():
        container = _container(deployment)
        [port] = [p["containerPort"] for p in container["ports"]]
        assert container["readinessProbe"]["httpGet"]["port"] == port, name


def test_every_deployment_is_scraped_for_metrics_where_it_listens() -> None:
    for name, deployment in _named("Deployment").items():
        [port] = [p["containerPort"] for p in _container(deployment)["ports"]]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(port), name
        assert annotations["prometheus.io/path"] == "/metrics", name


def test_the_status_check_asks_every_service_where_it_listens() -> None:
    deployments, services = _named("Deployment"), _named("Service")
    [job] = _named("CronJob").values()
    [container] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command: list[str] = container["command"]
    assert command[:2] == ["vtp", "status"]

    asked = dict(pair.split("=", 1) for pair in _options(command, "--service"))
    assert set(asked) == set(deployments)  # every service, and nothing else
    for name, url in asked.items():
        address = urlsplit(url)
        service = services[str(address.hostname)]
        [port] = service["spec"]["ports"]
        assert port["port"] == address.port, name
        deployment = deployments[service["spec"]["selector"]["app"]]
        assert deployment["metadata"]["name"] == name
        assert [p["containerPort"] for p in _container(deployment)["ports"]] == [port["targetPort"]]

    brokers = {
        env["value"]
        for d in deployments.values()
        for env in _container(d).get("env", [])
        if env["name"] == "KAFKA_BOOTSTRAP_SERVERS"
    }
    assert _options(command, "--bootstrap-servers") == sorted(brokers)

    # The options parse as `vtp status` reads them (an unknown one would fail here).
    app = typer.Typer()
    app.command()(status_command)
    context = typer.main.get_command(app).make_context("status", command[2:])
    assert context.params["bootstrap_servers"] == "vtp-kafka-bootstrap:9092"
    assert len(context.params["services"]) == len(asked)

    # With the operations token the services take, so that it can check mail delivery.
    token = {e["name"]: e for e in container.get("env", [])}["VTP_OPERATIONS_TOKEN"]
    claims_env = {e["name"]: e for e in _container(deployments["claims"])["env"]}
    assert token["valueFrom"] == claims_env["CLAIMS_API_TOKEN_SECRET"]["valueFrom"]


def test_services_create_topics_every_broker_can_write_to() -> None:
    # With acks=all, a topic of fewer replicas than min.insync.replicas takes no writes:
    # every topic a service creates at start must have at least that many.
    [kafka] = _named("Kafka").values()
    min_insync = int(kafka["spec"]["kafka"]["config"]["min.insync.replicas"])
    for name, deployment in _named("Deployment").items():
        env = {e["name"]: e.get("value") for e in _container(deployment)["env"]}
        assert int(env.get("KAFKA_TOPIC_REPLICATION_FACTOR", 1)) >= min_insync, name
    for name, topic in _named("KafkaTopic").items():
        assert int(topic["spec"]["replicas"]) >= min_insync, name


def test_topics_the_broker_must_stamp_are_declared_so() -> None:
    # Services create missing topics with the same setting (shared/kafka.topic_configs);
    # a topic declared here is created by the operator, so it must say it too.
    declared = _named("KafkaTopic")
    for topic in ALL_TOPICS:
        if topic.broker_time:
            config = declared[topic.name]["spec"]["config"]
            assert config["message.timestamp.type"] == "LogAppendTime", topic.name
            assert topic_configs(topic.name) == {"message.timestamp.type": "LogAppendTime"}
