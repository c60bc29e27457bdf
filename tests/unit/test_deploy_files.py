"""The deployment files (Dockerfile, deploy/**) parse and say what operators rely on. Fast, no network.

Validators that are not dependencies of the project skip with the reason when missing:
`docker compose` (the Compose v2 CLI plugin), kubernetes-validate and check-jsonschema (PyPI),
`systemd-analyze`, `promtool`. What a metric name refers to is checked against running services in
tests/e2e/test_metrics_names.py.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
PROMETHEUS = DEPLOY / "prometheus"
SERVICES = ("gateway", "delivery", "projections", "tickets")
KNOWN_SETTINGS = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
# What `docker compose config` needs from .env: the required secrets.
COMPOSE_ENV = {
    "LEDGERLINE_JWT_SECRET": "test-secret-test-secret-test-secret",
    "POSTGRES_PASSWORD": "pw",
    "GRAFANA_ADMIN_PASSWORD": "pw",
}


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


# ---- YAML and JSON ----


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert load_all(path), f"{path} is empty"


def test_the_dashboard_is_json_that_uses_the_provisioned_datasource() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ledgerline.json").read_text())
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert dashboard["uid"] and panels
    assert {p["datasource"]["uid"] for p in panels} == {uid}
    assert all(t["expr"] for p in panels for t in p["targets"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# ---- Dockerfile ----


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_builds_in_stages_from_pinned_bases() -> None:
    instructions = dockerfile_instructions()
    args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in instructions if k == "ARG" and "=" in v}
    bases = [args.get(v.split()[0].strip("${}"), v.split()[0]) for k, v in instructions if k == "FROM"]
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    for base in bases:
        assert ":" in base and not base.endswith(":latest"), f"base image {base} must name a version"
        assert base.startswith("python:3.11-slim")


def test_dockerfile_runs_as_a_user_without_privileges_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    users = [v for k, v in instructions if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # USER comes after the last FROM: it applies to the runtime stage.
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    assert any(k == "USER" and i > last_from for i, (k, _) in enumerate(instructions))
    healthcheck = [v for k, v in instructions if k == "HEALTHCHECK"]
    assert healthcheck and "CMD" in healthcheck[0] and "healthcheck" in healthcheck[0]
    assert ("ENTRYPOINT", '["ledgerline"]') in instructions
    assert ("CMD", '["gateway"]') in instructions


def test_dockerignore_keeps_the_build_context_to_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    for needed in ("requirements.lock", "pyproject.toml", "shared/", "services/", "deploy/docker/"):
        assert f"!{needed}" in lines


def healthcheck_module() -> Any:
    spec = importlib.util.spec_from_file_location("ledgerline_healthcheck", DEPLOY / "docker" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["/opt/ledgerline/bin/python", "/opt/ledgerline/bin/ledgerline", "gateway"], {}, "8080"),
        (["/sbin/docker-init", "--", "ledgerline", "gateway"], {"LEDGERLINE_GATEWAY_PORT": "9000"}, "9000"),
        (["/opt/ledgerline/bin/python", "/opt/ledgerline/bin/ledgerline", "projections"], {}, "9100"),
        (["ledgerline", "relay"], {"LEDGERLINE_WORKER_PORT": "9200"}, "9200"),
        (["/opt/ledgerline/bin/python", "/opt/ledgerline/bin/ledgerline", "migrate"], {}, None),
    ],
)
def test_the_healthcheck_probes_the_port_of_the_command(
    argv: list[str], env: dict[str, str], expected: str | None
) -> None:
    healthcheck = healthcheck_module()
    assert healthcheck.health_port(healthcheck.service_of(argv), env) == expected


# ---- Compose ----

_VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} (enough for our file), recursively; $$ stays $."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return _VARIABLE.sub(one, value).replace("$$", "$")


def test_compose_has_every_service_with_healthchecks_and_a_migration_first() -> None:
    doc = compose()
    services = doc["services"]
    for name in (*SERVICES, "postgres", "nats", "migrate", "prometheus", "grafana"):
        assert name in services, name
    assert services["migrate"]["command"] == ["migrate"]
    assert services["gateway"]["deploy"]["replicas"] in (2, "${GATEWAY_REPLICAS:-2}")
    for name in (*SERVICES, "postgres", "nats", "rabbitmq"):
        assert "test" in services[name]["healthcheck"], f"{name} has no healthcheck"
    for name in SERVICES:
        service = services[name]
        assert service["command"] == [name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["stop_grace_period"]


def test_compose_swaps_nats_for_rabbitmq_with_a_profile() -> None:
    services = compose()["services"]
    assert services["nats"]["profiles"] == ["nats"]
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
    for name in SERVICES:
        depends = services[name]["depends_on"]
        assert depends["nats"]["required"] is False and depends["rabbitmq"]["required"] is False
    example = (DEPLOY / "compose" / ".env.example").read_text()
    assert "COMPOSE_PROFILES=nats" in example and "COMPOSE_PROFILES=rabbitmq" in example


def test_compose_nats_flushes_before_it_acknowledges() -> None:
    config = (DEPLOY / "compose" / "nats" / "nats-server.conf").read_text()
    assert re.search(r"^\s*sync_interval:\s*always\s*$", config, re.M)


def test_compose_passes_only_known_settings_to_the_services() -> None:
    environment = compose()["x-ledgerline-env"]
    assert set(environment) <= KNOWN_SETTINGS, set(environment) - KNOWN_SETTINGS
    for name in SERVICES:
        assert "env_file" not in compose()["services"][name]


def test_compose_settings_have_defaults_or_are_named_in_env_example() -> None:
    text = COMPOSE.read_text()
    example = (DEPLOY / "compose" / ".env.example").read_text()
    required = {m.group(1) for m in _VARIABLE.finditer(text) if m.group(2) and m.group(2).endswith("?")}
    bare = {m.group(1) for m in _VARIABLE.finditer(text) if not m.group(2)}
    assert not bare, f"variables without a default: {bare}"
    for name in required | {m.group(1) for m in _VARIABLE.finditer(text)}:
        assert re.search(rf"^#?\s*{name}=", example, re.M), f"{name} is not in .env.example"


def test_compose_matches_the_compose_specification_schema() -> None:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema (PyPI) ships the compose-spec schema")
    import jsonschema
    from check_jsonschema import builtin_schemas

    schema_path = Path(builtin_schemas.__file__).parent / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())
    document = interpolate(compose(), {**COMPOSE_ENV, "GATEWAY_REPLICAS": "2"})
    document["services"]["gateway"]["deploy"]["replicas"] = int(document["services"]["gateway"]["deploy"]["replicas"])
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def test_docker_compose_config_accepts_the_file() -> None:
    if not docker_compose_available():
        pytest.skip("the Docker Compose v2 plugin (`docker compose`) is not installed here")
    for profile in ("nats", "rabbitmq"):
        env = {**os.environ, **COMPOSE_ENV, "COMPOSE_PROFILES": profile}
        result = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr


# ---- Kubernetes ----


def kubernetes_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for doc in load_all(path):
            if doc.get("kind") != "Kustomization":
                yield path, doc


def pod_specs(kind: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    for _path, doc in kubernetes_documents():
        if doc["kind"] in ("Deployment", "StatefulSet", "Job") and (kind is None or doc["kind"] == kind):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def test_kustomization_lists_files_that_exist() -> None:
    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text())["resources"]:
            assert (kustomization.parent / resource).is_file(), f"{kustomization}: {resource}"


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (PyPI) is not installed: pip install kubernetes-validate"
    )
    problems = []
    for path, doc in kubernetes_documents():
        try:
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{path.relative_to(KUBERNETES)} {doc['kind']}: {e.message}")
    assert not problems, "\n".join(problems)


def test_every_service_has_probes_resources_and_a_disruption_budget() -> None:
    deployments = dict(pod_specs("Deployment"))
    budgets = {doc["metadata"]["name"] for _p, doc in kubernetes_documents() if doc["kind"] == "PodDisruptionBudget"}
    for name in SERVICES:
        spec = deployments[f"ledgerline-{name}"]
        (container,) = spec["containers"]
        assert container["args"] == [name]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert f"ledgerline-{name}" in budgets
        assert spec["terminationGracePeriodSeconds"] > 10  # LEDGERLINE_SHUTDOWN_TIMEOUT


def test_ledgerline_pods_get_no_service_link_variables() -> None:
    # A Service named ledgerline-gateway makes Kubernetes inject LEDGERLINE_GATEWAY_PORT=tcp://...,
    # which the services refuse as an invalid / unknown setting.
    for name, spec in pod_specs():
        if name.startswith("ledgerline"):
            assert spec.get("enableServiceLinks") is False, name


def test_config_and_secrets_are_separate_and_known() -> None:
    docs = {doc["metadata"]["name"]: doc for _p, doc in kubernetes_documents()}
    config = docs["ledgerline-config"]["data"]
    secret = docs["ledgerline-secrets"]["stringData"]
    assert set(config) | set(secret) <= KNOWN_SETTINGS
    assert {"LEDGERLINE_JWT_SECRET", "LEDGERLINE_DATABASE_URL"} <= set(secret)
    assert not {"LEDGERLINE_JWT_SECRET", "LEDGERLINE_DATABASE_URL"} & set(config)
    assert docs["ledgerline-migrate"]["kind"] == "Job"


def test_the_example_nats_cluster_has_three_nodes_that_sync_always() -> None:
    docs = {doc["metadata"]["name"]: doc for _p, doc in kubernetes_documents()}
    assert docs["nats"]["kind"] == "StatefulSet" and docs["nats"]["spec"]["replicas"] == 3
    config = docs["nats-config"]["data"]["nats-server.conf"]
    assert re.search(r"^\s*sync_interval:\s*always\s*$", config, re.M)
    assert config.count("nats-headless.ledgerline.svc:6222") == 3


def test_the_kubernetes_streams_keep_one_copy_per_nats_node() -> None:
    docs = {doc["metadata"]["name"]: doc for _p, doc in kubernetes_documents()}
    replicas = int(docs["ledgerline-config"]["data"]["LEDGERLINE_NATS_REPLICAS"])
    assert replicas == docs["nats"]["spec"]["replicas"] == 3


# ---- systemd ----


def unit_files() -> list[Path]:
    return sorted(SYSTEMD.glob("ledgerline*.service"))


def read_unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # unit keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_there_is_one_unit_per_service_and_a_oneshot_migration() -> None:
    names = {p.name for p in unit_files()}
    assert names == {f"ledgerline-{s}.service" for s in (*SERVICES, "migrate")}
    migrate = read_unit(SYSTEMD / "ledgerline-migrate.service")
    assert migrate["Service"]["Type"] == "oneshot"


@pytest.mark.parametrize("path", unit_files(), ids=lambda p: p.name)
def test_units_restart_read_the_environment_file_and_are_hardened(path: Path) -> None:
    service = read_unit(path)["Service"]
    assert service["EnvironmentFile"] == "/etc/ledgerline/ledgerline.env"
    assert service["User"] == "ledgerline"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "ReadWritePaths": "/var/lib/ledgerline",
    }.items():
        assert service[key] == value, key
    if path.name != "ledgerline-migrate.service":
        assert service["Restart"] == "on-failure"
        assert service["ExecStart"].endswith(path.name.removeprefix("ledgerline-").removesuffix(".service"))
        # Above LEDGERLINE_SHUTDOWN_TIMEOUT (10 s by default): the service stops by itself first.
        assert int(service["TimeoutStopSec"].removesuffix("s")) > 10
        assert read_unit(path)["Unit"]["Requires"] == "ledgerline-migrate.service"


def test_the_environment_file_example_names_only_known_settings() -> None:
    lines = (SYSTEMD / "ledgerline.env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert names <= KNOWN_SETTINGS, names - KNOWN_SETTINGS
    assert "LEDGERLINE_WORKER_PORT" not in names


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # The units name /opt/ledgerline/bin/ledgerline, which verify wants to exist: point at this venv's.
    executable = Path(sys.executable).parent / "ledgerline"
    for unit in [*SYSTEMD.glob("ledgerline*.service"), SYSTEMD / "ledgerline.target"]:
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/ledgerline/bin/ledgerline", str(executable)))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on unknown keys too; they are only printed, so anything printed is a failure.
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), result.stderr


# ---- Prometheus ----


def test_alert_rules_have_a_severity_and_a_summary() -> None:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    for expected in (
        "LedgerlineServiceDown",
        "LedgerlineRelayStalled",
        "LedgerlineRelayLagGrowing",
        "LedgerlineConsumerLagGrowing",
        "LedgerlineEventsDeadLettered",
    ):
        assert expected in names
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_every_scrape_config_covers_every_service() -> None:
    for name in ("prometheus.compose.yml", "prometheus.static.yml"):
        config = yaml.safe_load((PROMETHEUS / name).read_text())
        jobs = {job["job_name"] for job in config["scrape_configs"]}
        assert {f"ledgerline-{s}" for s in SERVICES} <= jobs, name
        assert config["rule_files"] == ["alerts.yml"]


def test_promtool_accepts_the_rules_and_the_configs() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Prometheus) is not installed here")
    commands = [["check", "rules", "alerts.yml"]]
    # prometheus.kubernetes.yml is left out: some distribution builds of promtool lack kubernetes_sd.
    commands += [["check", "config", name] for name in ("prometheus.compose.yml", "prometheus.static.yml")]
    for command in commands:
        result = subprocess.run(
            [promtool, *command], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
