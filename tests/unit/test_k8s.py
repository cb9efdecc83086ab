"""deploy/k8s/ rendered (base and the production overlay) and validated offline.

Rendering: tests/kustomize_lite.py (the Kustomize subset the manifests use); where kubectl is
installed its built-in kustomize renders the same directories and must agree object for
object. Validation: every built-in object against the Kubernetes JSON schemas bundled in the
PyPI package kubernetes-validate (strict: unknown fields are errors); the custom resources
(KEDA's ScaledObject, the Prometheus operator's PodMonitor) get structural checks here.
Then what the platform needs of them: one Deployment per service (billing as coordinator
and worker), probes on /health, resources, Secrets referenced and never embedded, the
rulebook, the calendar CronJobs, the topics, and scaling on the workers' lag.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError
from kustomize_lite import build, containers, pod_specs
from mutualaid.contracts import Command, registered_types, topics
from mutualaid.contracts.billing import RunSharingPeriod
from mutualaid.contracts.jury import CloseVoting
from mutualaid.contracts.publicity import ClosePublicityRound, OpenPublicityRound
from mutualaid.rulebook import load_rulebook
from mutualaid.runtime.dispatch import SourcePolicy

from billing.app import WORKER_GROUP

pytestmark = pytest.mark.domain

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATIONS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
PACKAGED_RULEBOOK = REPO / "libs/mutualaid/src/mutualaid/rulebook/rulebook.yaml"
#: The oldest Kubernetes the manifests support (CronJob timeZone is GA from 1.27) and a
#: recent one; both are bundled in kubernetes-validate.
KUBERNETES_VERSIONS = ("1.29", "1.33")
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "PodMonitor")}
#: Deployment name -> (service, BILLING_ROLE or None).
DEPLOYMENTS = {"membership": ("membership", None), "claims": ("claims", None),
               "publicity": ("publicity", None), "jury": ("jury", None),
               "billing-coordinator": ("billing", "coordinator"),
               "billing-worker": ("billing", "worker")}


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, build(KUSTOMIZATIONS[request.param])


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def config_map(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A generated ConfigMap by its name before the content hash."""
    (found,) = [o for o in objects if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].rsplit("-", 1)[0] == name]
    return found


def settings(objects: list[dict[str, Any]]) -> dict[str, str]:
    return config_map(objects, "mutualaid-settings")["data"]


def topic_partitions(objects: list[dict[str, Any]]) -> dict[str, int]:
    lines = config_map(objects, "kafka-topics")["data"]["topics.txt"].splitlines()
    pairs = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {topic: int(partitions) for topic, partitions in pairs}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# --------------------------------------------------------------------------- rendering


def test_the_renderer_agrees_with_kubectl_kustomize() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: kustomize_lite's rendering is not cross-checked")
    for name, directory in KUSTOMIZATIONS.items():
        out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                             text=True, timeout=120, check=True).stdout
        theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out) if o}
        ours = {(o["kind"], o["metadata"]["name"]): o for o in build(directory)}
        assert sorted(ours) == sorted(theirs), name
        for key, obj in ours.items():
            assert obj == theirs[key], (name, key)


def test_every_builtin_object_matches_the_kubernetes_schemas(rendered) -> None:
    name, objects = rendered
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} is not valid "
                            f"Kubernetes {version}: {where}: {exc.message}")
    assert {(o["apiVersion"], o["kind"]) for o in objects} & CUSTOM_KINDS


def test_the_validator_rejects_what_it_should() -> None:
    """The schemas are really applied: a misspelt field and a wrong type both fail."""
    deployment = build(KUSTOMIZATIONS["base"])
    (obj,) = [o for o in deployment if o["kind"] == "Deployment"
              and o["metadata"]["name"] == "claims"]
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[0], strict=True)
    container["readinessProbe"] = container.pop("readinesProbe")
    obj["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[0], strict=True)
    with pytest.raises(SchemaNotFoundError):
        kubernetes_validate.validate({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                                      "metadata": {"name": "x"}}, KUBERNETES_VERSIONS[0])


def test_every_object_is_namespaced_and_labelled(rendered) -> None:
    name, objects = rendered
    for obj in objects:
        assert obj["metadata"]["namespace"] == "mutualaid", obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "mutualaid"
    if name == "production":
        assert all(o["metadata"]["labels"]["environment"] == "production" for o in objects)


# --------------------------------------------------------------------------- workloads


def test_one_deployment_per_service_and_billing_split_by_role(rendered) -> None:
    _, objects = rendered
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == set(DEPLOYMENTS)
    assert {service for service, _ in DEPLOYMENTS.values()} == set(topics.SERVICES)
    for name, (service, role) in DEPLOYMENTS.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [service]
        assert container["image"].split("/")[-1].startswith(("mutualaid-platform", "platform"))
        env = env_of(container)
        if role is None:
            assert "BILLING_ROLE" not in env
        else:
            assert env["BILLING_ROLE"]["value"] == role
    # KEDA owns the workers' replica count; a fixed one would fight it on every apply.
    assert "replicas" not in deployments["billing-worker"]["spec"]
    for name in set(DEPLOYMENTS) - {"billing-worker"}:
        assert deployments[name]["spec"]["replicas"] >= 2, name


def test_services_listen_on_all_interfaces_and_probe_health(rendered) -> None:
    _, objects = rendered
    assert settings(objects)["HTTP_HOST"] == "0.0.0.0"
    port = int(settings(objects)["HTTP_PORT"])
    for name, deployment in by_kind(objects, "Deployment").items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        assert {"name": "http", "containerPort": port} in container["ports"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, name
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"


def test_every_deployment_has_a_service_and_a_disruption_budget(rendered) -> None:
    _, objects = rendered
    services, budgets = by_kind(objects, "Service"), by_kind(objects, "PodDisruptionBudget")
    for name, deployment in by_kind(objects, "Deployment").items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert services[name]["spec"]["selector"] == selector
        assert services[name]["spec"]["ports"][0]["targetPort"] == "http"
        assert budgets[name]["spec"]["selector"]["matchLabels"] == selector
        assert budgets[name]["spec"]["maxUnavailable"] == 1


def test_every_container_has_resource_requests_and_limits(rendered) -> None:
    _, objects = rendered
    checked = 0
    for obj in objects:
        for pod in pod_specs(obj):
            for c in containers(pod):
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(c["resources"][bound]), \
                        (obj["metadata"]["name"], c["name"], bound)
                checked += 1
    assert checked >= len(DEPLOYMENTS) + 5  # the services, the CronJobs and the topics Job


def test_containers_run_unprivileged(rendered) -> None:
    _, objects = rendered
    for obj in objects:
        for pod in pod_specs(obj):
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["enableServiceLinks"] is False  # no <SERVICE>_PORT env surprises
            for c in containers(pod):
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


# --------------------------------------------------------------------------- configuration


def test_secrets_are_referenced_never_embedded(rendered) -> None:
    _, objects = rendered
    assert not [o for o in objects if o["kind"] == "Secret"]
    secret_names = {"DATABASE_URL", "ID_HASH_KEY", "PASSWORD"}
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            text = json.dumps(obj["data"])
            assert not re.search(r"postgres(ql)?://[^\s\"]*:[^\s\"]*@", text), obj["metadata"]
            assert not any(s in key for key in obj["data"] for s in secret_names)
        for pod in pod_specs(obj):
            for c in containers(pod):
                for env in c.get("env", []):
                    if any(s in env["name"] for s in secret_names):
                        assert "value" not in env, (obj["metadata"]["name"], env["name"])
                        assert env["valueFrom"]["secretKeyRef"]["name"], env["name"]
    deployments = by_kind(objects, "Deployment")
    for name, (service, _) in DEPLOYMENTS.items():
        env = env_of(deployments[name]["spec"]["template"]["spec"]["containers"][0])
        ref = env[f"{service.upper()}_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "mutualaid-database", "key": f"{service}-url"}
    membership = env_of(deployments["membership"]["spec"]["template"]["spec"]["containers"][0])
    assert membership["MEMBERSHIP_ID_HASH_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mutualaid-membership", "key": "id-hash-key"}


def test_the_rulebook_config_map_is_the_packaged_rulebook_mounted_where_settings_say(
        rendered) -> None:
    _, objects = rendered
    packaged = PACKAGED_RULEBOOK.read_text()
    assert (K8S / "base" / "rulebook.yaml").read_text() == packaged, (
        "deploy/k8s/base/rulebook.yaml differs from the packaged rulebook: "
        f"cp {PACKAGED_RULEBOOK.relative_to(REPO)} deploy/k8s/base/rulebook.yaml")
    load_rulebook(K8S / "base" / "rulebook.yaml")
    rulebook = config_map(objects, "mutualaid-rulebook")
    assert rulebook["data"] == {"rulebook.yaml": packaged}
    path = Path(settings(objects)["RULEBOOK_PATH"])
    for name, deployment in by_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"]
                    if Path(m["mountPath"]) == path.parent]
        assert volumes[mount["name"]]["configMap"]["name"] == rulebook["metadata"]["name"]
        assert container["envFrom"] == [
            {"configMapRef": {"name": config_map(objects, "mutualaid-settings")
                              ["metadata"]["name"]}}], name


def test_settings_are_those_of_a_production_like_deployment(rendered) -> None:
    _, objects = rendered
    s = settings(objects)
    assert s["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    assert s["KAFKA_CREATE_TOPICS"] == "false"  # the kafka-topics Job owns them
    assert s["PUBLICITY_SCHEDULER_ENABLED"] == "false"  # the CronJobs send the calendar
    assert 1 <= int(s["BILLING_SHARD_TASKS"]) <= 1024


# --------------------------------------------------------------------------- topics, scaling


def test_the_topics_job_creates_every_topic_with_enough_partitions(rendered) -> None:
    _, objects = rendered
    partitions = topic_partitions(objects)
    assert set(partitions) == set(topics.all_topics())
    for topic, minimum in topics.MIN_PARTITIONS.items():
        assert partitions[topic] >= minimum
    job = by_kind(objects, "Job")["kafka-topics"]
    (volume,) = job["spec"]["template"]["spec"]["volumes"]
    assert volume["configMap"]["name"] == config_map(objects, "kafka-topics")["metadata"]["name"]
    assert "--if-not-exists" in job["spec"]["template"]["spec"]["containers"][0]["args"][0]


def test_keda_scales_billing_workers_on_their_groups_lag(rendered) -> None:
    """Structural check of the ScaledObject (no KEDA schema is bundled offline)."""
    _, objects = rendered
    (scaler,) = [o for o in objects if o["kind"] == "ScaledObject"]
    assert scaler["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaler["spec"]
    assert set(spec) <= {"scaleTargetRef", "pollingInterval", "cooldownPeriod",
                         "minReplicaCount", "maxReplicaCount", "advanced", "triggers",
                         "idleReplicaCount", "fallback", "initialCooldownPeriod"}
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "billing-worker"}
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    # More workers than partitions would sit idle (KEDA caps there anyway).
    assert spec["maxReplicaCount"] <= topic_partitions(objects)[topics.SHARD_TASKS]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values())  # KEDA: map[string]string
    assert meta["consumerGroup"] == WORKER_GROUP
    assert meta["topic"] == topics.SHARD_TASKS
    assert meta["bootstrapServers"] == settings(objects)["KAFKA_BOOTSTRAP_SERVERS"]
    assert int(meta["lagThreshold"]) >= 1
    assert meta["offsetResetPolicy"] == "earliest"  # the workers' auto_offset_reset
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300


def test_the_pod_monitor_scrapes_every_service_with_the_dashboards_labels(rendered) -> None:
    name, objects = rendered
    monitors = [o for o in objects if o["kind"] == "PodMonitor"]
    if name == "base":
        assert not monitors  # the base needs no Prometheus operator
        return
    (monitor,) = monitors
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (expression,) = monitor["spec"]["selector"]["matchExpressions"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    for deployment in by_kind(objects, "Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert expression["operator"] == "In"
        assert labels[expression["key"]] in expression["values"]
    targets = {r["targetLabel"] for r in endpoint["relabelings"]}
    assert targets == {"service", "role"}


# --------------------------------------------------------------------------- calendar


def _command_data(cronjob: dict[str, Any], today: date) -> tuple[str, str, dict[str, Any]]:
    """(service, command, data) a calendar CronJob sends on ``today``, its shell
    substitutions evaluated for that date."""
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    script = container["args"][0]
    script = script.replace("$(date +%F)", today.isoformat())
    script = script.replace("$(date +%Y-%m)", today.strftime("%Y-%m"))
    argv = shlex.split(script)
    assert argv[:5] == ["exec", "/app/.venv/bin/python", "-m", "mutualaid.cli", "send"]
    args = cli_args(argv[4:])
    assert args.no_wait, "a Job must not fail on a command's outcome"
    data = json.loads(args.data)
    # one id per command and date: a retried Job's copy is dropped by the inbox
    assert args.id == f"calendar/{args.service}.{args.command}/{next(iter(data.values()))}"
    assert env_of(container)["TZ"]["value"] == "Asia/Shanghai"
    return args.service, args.command, data


def cli_args(argv: list[str]) -> Any:
    """The operator CLI's own parsing of a command line (`mutualaid send ...`)."""
    cli = pytest.importorskip("mutualaid.cli.main")
    return cli.build_parser().parse_args(argv)


def _days(schedule: str) -> set[int]:
    minute, hour, days, month, weekday = schedule.split()
    assert (month, weekday) == ("*", "*")
    return {int(d) for d in days.split(",")}


def test_calendar_cronjobs_send_valid_commands_on_the_rulebooks_days(rendered) -> None:
    _, objects = rendered
    cronjobs = by_kind(objects, "CronJob")
    rules = load_rulebook().version_on(date.today())
    plans = rules.plans.values()
    publicity_days = {d for p in plans for d in p.publicity_days}
    sharing_days = {d for p in plans for d in p.sharing_days}
    window = max(p.objection_window_days for p in plans)
    for job in cronjobs.values():
        assert job["spec"]["timeZone"] == "Asia/Shanghai"
        assert job["spec"]["concurrencyPolicy"] == "Forbid"

    opening = cronjobs["publicity-open-round"]
    assert _days(opening["spec"]["schedule"]) == publicity_days
    for day in sorted(publicity_days):
        today = date(2026, 3, day)
        service, command, data = _command_data(opening, today)
        assert (service, command) == ("publicity", "OpenPublicityRound")
        assert OpenPublicityRound.model_validate(data).round_date == today

    closes = [j for n, j in cronjobs.items() if n.startswith("publicity-close-round")]
    closed_rounds = set()
    for job in closes:
        (day,) = _days(job["spec"]["schedule"])
        today = date(2026, 3, day)
        service, command, data = _command_data(job, today)
        assert (service, command) == ("publicity", "ClosePublicityRound")
        round_date = ClosePublicityRound.model_validate(data).round_date
        # the deadline is round date + window, inclusive: the close is due the day after
        assert (today - round_date).days == window + 1
        closed_rounds.add(round_date.day)
    assert closed_rounds == publicity_days

    sharing = cronjobs["billing-sharing-run"]
    assert _days(sharing["spec"]["schedule"]) == sharing_days
    service, command, data = _command_data(sharing, date(2026, 3, 14))
    assert (service, command) == ("billing", "RunSharingPeriod")
    assert RunSharingPeriod.model_validate(data).sharing_date == date(2026, 3, 14)

    voting = cronjobs["jury-close-voting"]
    pod = voting["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    script = Path(container["args"][1])
    (mount,) = container["volumeMounts"]
    assert Path(mount["mountPath"]) == script.parent
    (volume,) = pod["volumes"]
    scripts = config_map(objects, "calendar-scripts")
    assert volume["configMap"]["name"] == scripts["metadata"]["name"]
    assert script.name in scripts["data"]
    assert env_of(container)["JURY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "jury-url"


def test_the_close_voting_script_sends_valid_commands() -> None:
    path = K8S / "base" / "calendar" / "close_due_votes.py"
    spec = importlib.util.spec_from_file_location("close_due_votes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from datetime import datetime, timezone
    deadline = datetime(2026, 3, 13, 16, 0, tzinfo=timezone.utc)
    argv = module.command_argv("case-9", deadline)
    assert argv[1:3] == ["-m", "mutualaid.cli"]
    args = cli_args(argv[3:])
    assert (args.service, args.command, args.no_wait) == ("jury", "CloseVoting", True)
    command = CloseVoting.model_validate(json.loads(args.data))
    assert command.case_id == "case-9" and command.closed_at == deadline
    assert args.id == module.command_argv("case-9", deadline)[argv.index("--id") + 1]
    assert args.id != module.command_argv("case-9", deadline.replace(hour=17))[
        argv.index("--id") + 1]
    assert "NOT decided" in module.DUE and "closes_at <= now()" in module.DUE


def test_production_names_who_may_send_every_command_and_mounts_tls() -> None:
    """Once a service has allowed sources, a command nobody is named for is refused: the
    production mapping must name every command of every service, the calendar CronJobs'
    source must be allowed to send the calendar commands, and the TLS files the settings
    point at must be mounted in every service container."""
    objects = build(K8S / "overlays" / "production")
    env = settings(objects)
    commands = [t for t, m in registered_types().items() if issubclass(m, Command)]
    for service in topics.SERVICES:
        policy = json.loads(env[f"{service.upper()}_ALLOWED_SOURCES"])
        for command in (c for c in commands if c.startswith(f"{service}.")):
            assert command.split(".", 1)[1] in policy or "*" in policy, command
    calendar = "mutualaid/k8s-calendar"
    for command in ("publicity.OpenPublicityRound", "publicity.ClosePublicityRound",
                    "jury.CloseVoting", "billing.RunSharingPeriod"):
        service = command.split(".")[0]
        policy = SourcePolicy(json.loads(env[f"{service.upper()}_ALLOWED_SOURCES"]))
        assert policy.allows(command, calendar), command
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SSL"
    for name, deployment in by_kind(objects, "Deployment").items():
        for pod in pod_specs(deployment):
            for container in containers(pod):
                mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                assert "/etc/mutualaid/kafka" in mounts, name
                for key in ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"):
                    assert env[key].startswith("/etc/mutualaid/kafka/"), key
