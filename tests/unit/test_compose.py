"""docker-compose.yml must stay consistent with the platform's topics and service layout.

Docker cannot run on dev/CI machines, so this file parse is the check that keeps the stack
honest: a topic added in mutualaid.contracts.topics must also be created by kafka-init.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from mutualaid.contracts.topics import SERVICES, all_topics

pytestmark = pytest.mark.domain

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def created_topics(services: dict) -> dict[str, int]:
    """topic -> partitions, from the `create <topic> <partitions>` lines of kafka-init."""
    script = "\n".join(services["kafka-init"]["command"])
    return {
        name: int(partitions)
        for name, partitions in re.findall(r"^\s*create\s+(\S+)\s+(\d+)\s*$", script, re.MULTILINE)
    }


def test_every_service_is_built_configured_and_health_checked(services: dict) -> None:
    for name in SERVICES:
        service = services[name]
        prefix = name.upper()
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert service["command"] == [name]
        assert "http://localhost:8080/health" in " ".join(service["healthcheck"]["test"])
        env = service["environment"]
        assert env[f"{prefix}_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env[f"{prefix}_DATABASE_URL"].endswith("@postgres:5432/mutualaid")
        assert str(env[f"{prefix}_KAFKA_ENABLE_IDEMPOTENCE"]).lower() == "true"
        assert str(env[f"{prefix}_HTTP_PORT"]) == "8080"
        assert service["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["billing"]["deploy"]["replicas"] == 3


def test_kafka_runs_single_node_kraft_without_auto_created_topics(services: dict) -> None:
    env = services["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert not any("ZOOKEEPER" in key for key in env)
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    assert "healthcheck" in services["kafka"] and "healthcheck" in services["postgres"]


def test_init_service_creates_every_platform_topic(services: dict) -> None:
    init = services["kafka-init"]
    script = "\n".join(init["command"])
    assert "kafka-topics.sh" in script and "--if-not-exists" in script
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    created = created_topics(services)
    missing = sorted(set(all_topics()) - set(created))
    assert not missing, f"kafka-init does not create {missing}"
    assert all(partitions > 0 for partitions in created.values())
