"""docker-compose.yml must stay consistent with the platform's topics and service layout.

Docker cannot run on dev/CI machines, so this file parse is the check that keeps the stack
honest: a topic added in mutualaid.contracts.topics must also be created by kafka-init, every
platform container must be scraped by Prometheus, and the files Prometheus and Grafana are
given must exist where the containers look for them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from mutualaid.contracts.topics import MIN_PARTITIONS, SERVICES, all_topics

pytestmark = pytest.mark.domain

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
#: compose service -> (platform service, BILLING_ROLE or None, least replicas)
PLATFORM = {"membership": ("membership", None, 1), "claims": ("claims", None, 1),
            "publicity": ("publicity", None, 1), "jury": ("jury", None, 1),
            "billing-coordinator": ("billing", "coordinator", 2),
            "billing-worker": ("billing", "worker", 3)}


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


def mounts(service: dict) -> dict[str, Path]:
    """container path -> host path (relative to the repo) of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("./"):
            out[container] = REPO / host
    return out


def test_every_service_is_built_configured_and_health_checked(services: dict) -> None:
    assert {s for s, _, _ in PLATFORM.values()} == set(SERVICES)
    for name, (platform_service, _, _) in PLATFORM.items():
        service = services[name]
        prefix = platform_service.upper()
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert service["command"] == [platform_service]
        assert "http://localhost:8080/health" in " ".join(service["healthcheck"]["test"])
        env = service["environment"]
        assert env[f"{prefix}_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env[f"{prefix}_DATABASE_URL"].endswith("@postgres:5432/mutualaid")
        assert str(env[f"{prefix}_KAFKA_ENABLE_IDEMPOTENCE"]).lower() == "true"
        assert str(env[f"{prefix}_HTTP_PORT"]) == "8080"
        # Prometheus scrapes from its own container: localhost-only would refuse it.
        assert env[f"{prefix}_HTTP_HOST"] == "0.0.0.0"
        assert str(env[f"{prefix}_KAFKA_CREATE_TOPICS"]).lower() == "false"  # kafka-init's
        assert service["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_billing_runs_as_coordinators_and_workers(services: dict) -> None:
    assert "billing" not in services
    for name, (_, role, replicas) in PLATFORM.items():
        env = services[name]["environment"]
        assert env.get("BILLING_ROLE") == role, name
        assert services[name].get("deploy", {}).get("replicas", 1) >= replicas, name


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
    for topic, minimum in MIN_PARTITIONS.items():  # billing.shard-tasks: 24
        assert created[topic] >= minimum, topic


def test_prometheus_scrapes_every_platform_container(services: dict) -> None:
    prometheus = services["prometheus"]
    files = mounts(prometheus)
    config_path = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config = yaml.safe_load(files[config_path.split("=", 1)[1]].read_text())
    scraped: dict[str, dict[str, str]] = {}
    for job in config["scrape_configs"]:
        labels = {r["target_label"]: r["replacement"] for r in job.get("relabel_configs", [])}
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A" and sd["port"] == 8080
            for name in sd["names"]:
                scraped[name] = labels
    for name, (platform_service, role, _) in PLATFORM.items():
        assert name in scraped, f"Prometheus does not scrape {name}"
        assert scraped[name].get("service") == platform_service
        assert scraped[name].get("role") == role
    assert not set(scraped) - set(PLATFORM) - {"prometheus"}


def test_prometheus_loads_the_alert_rules(services: dict) -> None:
    files = mounts(services["prometheus"])
    config_path = next(a for a in services["prometheus"]["command"]
                       if a.startswith("--config.file="))
    config = yaml.safe_load(files[config_path.split("=", 1)[1]].read_text())
    (pattern,) = config["rule_files"]
    directory, glob = pattern.rsplit("/", 1)
    rules = sorted(files[directory].glob(glob))
    assert [p.name for p in rules] == ["mutualaid.yml"]
    assert yaml.safe_load(rules[0].read_text())["groups"]


def test_grafana_is_provisioned_with_the_datasource_and_dashboards(services: dict) -> None:
    grafana = services["grafana"]
    files = mounts(grafana)
    provisioning = files["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in grafana["depends_on"]
    (provider,) = yaml.safe_load(
        (provisioning / "dashboards" / "mutualaid.yml").read_text())["providers"]
    dashboards = files[provider["options"]["path"]]
    names = sorted(p.name for p in dashboards.glob("*.json"))
    assert names == ["billing-run.json", "case-pipeline.json", "overview.json"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent == Path(provider["options"]["path"]) and Path(home).name in names
    for path in dashboards.glob("*.json"):
        board = json.loads(path.read_text())
        uids = {p["datasource"]["uid"] for p in board["panels"] if "datasource" in p}
        assert uids == {datasource["uid"]}, path.name
