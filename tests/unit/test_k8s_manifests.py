"""k8s/: the base and the production overlay render, validate against the Kubernetes schemas
(offline, `kubernetes-validate`), and run what the application really serves and accepts:
commands the CLI parses, probe paths the API routes, ports the processes listen on, settings
that exist."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from api import cli
from api.cli import WORKERS, build_parser
from infrastructure.settings import Settings
from tests.kustomize import (
    UnsupportedKustomizationError,
    pod_templates,
    render,
    strategic_merge,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
FOLDERS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
# The oldest minor the manifests support (preStop `sleep`: 1.30) and the newest schemas known.
KUBERNETES_VERSIONS = ("1.30", "1.37")

# The worker Deployments and what each runs (`waymark worker <kind>`); cleanup is a CronJob.
WORKER_DEPLOYMENTS = {f"waymark-worker-{kind}": kind for kind in WORKERS if kind != "cleanup"}
LONG_RUNNING = {"waymark-api", *WORKER_DEPLOYMENTS}
AUTOSCALED = {"waymark-api", "waymark-worker-tasks"}
# Settings the manifests set that arrive with the operations work running in parallel
# (structured logs, the workers' health/metrics port). Until they are merged they may be
# missing from Settings; once they exist the test below checks their names like any other.
PENDING_SETTINGS = {"WAYMARK_LOG_FORMAT", "WAYMARK_WORKER_PROBE_PORT"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEYS|TOKEN|DATABASE_URL", re.IGNORECASE)


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(FOLDERS[request.param])


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for t in pod_templates(resource) for c in t["spec"]["containers"]]


def config(resources: list[dict[str, Any]]) -> dict[str, str]:
    return by_kind(resources, "ConfigMap")["waymark-config"]["data"]


def api_routes() -> set[str]:
    from api.app import create_app

    app = create_app(lambda: None)  # type: ignore[arg-type,return-value]  # never started
    # The documented routes, plus what the app itself mounts (docs, a metrics app, ...).
    paths = set(app.openapi()["paths"])
    return paths | {route.path for route in app.routes if hasattr(route, "path")}


def named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


# --- rendering and schemas ------------------------------------------------------------------


def test_every_rendered_manifest_is_valid_for_kubernetes(rendered: list[dict[str, Any]]) -> None:
    kinds = {r["kind"] for r in rendered}
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Job",
        "CronJob",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "ServiceAccount",
    } <= kinds
    for resource in rendered:
        for version in KUBERNETES_VERSIONS:
            # strict: an unknown field (a typo such as `pth:`) is an error, not ignored.
            kubernetes_validate.validate(resource, version, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    # Negative control: the schema check above would catch a broken probe.
    deployment = copy.deepcopy(by_kind(render(FOLDERS["base"]), "Deployment")["waymark-api"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_overlay_changes_what_it_patches_and_keeps_the_rest() -> None:
    base, production = render(FOLDERS["base"]), render(FOLDERS["production"])
    api_base = by_kind(base, "Deployment")["waymark-api"]
    api_prod = by_kind(production, "Deployment")["waymark-api"]
    assert api_prod["metadata"]["namespace"] == "waymark"
    assert api_prod["spec"]["replicas"] == 3  # SEEDS: three API replicas in production
    (container,) = containers(api_prod)
    assert container["resources"]["limits"]["memory"] == "1Gi"
    assert container["readinessProbe"] == containers(api_base)[0]["readinessProbe"]
    tasks = containers(by_kind(production, "Deployment")["waymark-worker-tasks"])[0]
    env = {e["name"] for e in tasks["env"]}
    assert {"DATABASE_URL", "WAYMARK_TASK_WORKER_CONCURRENCY"} <= env  # merged by name
    assert config(production)["OTEL_TRACES_SAMPLER_ARG"] == "0.1"  # SEEDS: 10 % sampling
    assert config(production)["WAYMARK_LOG_LEVEL"] == "INFO"  # base keys kept
    for resource in production:
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "waymark"


def test_strategic_merge_merges_keyed_lists_and_replaces_others() -> None:
    base = {"containers": [{"name": "a", "args": ["x", "y"], "env": [{"name": "K", "value": "1"}]}]}
    patch = {"containers": [{"name": "a", "args": ["z"], "env": [{"name": "L", "value": "2"}]}]}
    (merged,) = strategic_merge(base, patch)["containers"]
    assert merged["args"] == ["z"]
    assert merged["env"] == [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}]


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nreplicas: []\n")
    with pytest.raises(UnsupportedKustomizationError):
        render(tmp_path)


# --- what the processes run -----------------------------------------------------------------


def test_one_deployment_per_process_and_commands_the_cli_accepts(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == LONG_RUNNING
    parser = build_parser()
    for name, kind in WORKER_DEPLOYMENTS.items():
        assert containers(deployments[name])[0]["args"] == ["worker", kind]
    workloads = [*deployments.values(), *by_kind(rendered, "Job").values()]
    workloads += by_kind(rendered, "CronJob").values()
    for workload in workloads:
        for container in containers(workload):
            parser.parse_args(container["args"])  # SystemExit if the CLI does not know them
    assert containers(by_kind(rendered, "Job")["waymark-migrate"])[0]["args"] == ["migrate"]
    cleanup = by_kind(rendered, "CronJob")["waymark-cleanup"]
    assert containers(cleanup)[0]["args"] == ["cleanup", "--once"]
    assert cleanup["spec"]["concurrencyPolicy"] == "Forbid"


def test_probes_use_the_health_routes_the_api_serves(rendered: list[dict[str, Any]]) -> None:
    routes = api_routes()
    assert {"/health/live", "/health/ready"} <= routes
    for name in LONG_RUNNING:
        (container,) = containers(by_kind(rendered, "Deployment")[name])
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] in routes


def test_ports_match_what_each_process_listens_on(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    api = deployments["waymark-api"]
    (container,) = containers(api)
    serve = build_parser().parse_args(container["args"])
    assert serve.host == "0.0.0.0"  # reachable from the kubelet and the Service
    worker_port = int(config(rendered)["WAYMARK_WORKER_PROBE_PORT"])
    for name, deployment in deployments.items():
        (container,) = containers(deployment)
        listens = serve.port if name == "waymark-api" else worker_port
        template = pod_templates(deployment)[0]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == listens
        assert annotations["prometheus.io/path"] == "/metrics"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert named_port(container, container[probe]["httpGet"]["port"]) == listens
    for service in by_kind(rendered, "Service").values():
        selected = [d for d in deployments.values() if selects(service["spec"]["selector"], d)]
        assert selected, service["metadata"]["name"]
        for deployment in selected:
            (container,) = containers(deployment)
            for port in service["spec"]["ports"]:
                named_port(container, port["targetPort"])  # StopIteration if not a port


def test_worker_port_is_the_setting_the_workers_read() -> None:
    field = Settings.model_fields["worker_probe_port"]
    # The manifests set it explicitly, and to the workers' own default.
    assert int(config(render(FOLDERS["base"]))["WAYMARK_WORKER_PROBE_PORT"]) == field.default


def test_every_variable_set_is_a_setting(rendered: list[dict[str, Any]]) -> None:
    names = set(config(rendered))
    for resource in rendered:
        for container in containers(resource):
            names |= {e["name"] for e in container.get("env", [])}
    known = {f"WAYMARK_{field.upper()}" for field in Settings.model_fields}
    known |= {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}
    waymark = {n for n in names if n.startswith(("WAYMARK_", "DATABASE_", "KAFKA_"))}
    assert waymark - known <= PENDING_SETTINGS
    assert all(n.startswith(("WAYMARK_", "DATABASE_", "KAFKA_", "OTEL_", "PYTHON")) for n in names)


def test_no_secret_is_in_the_repository(rendered: list[dict[str, Any]]) -> None:
    assert not by_kind(rendered, "Secret")
    assert not [key for key in config(rendered) if SECRET_NAME.search(key)]
    for resource in rendered:
        for container in containers(resource):
            for env in container.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "value" not in env, env["name"]
                    assert env["valueFrom"]["secretKeyRef"]["name"] == "waymark-secrets"


# --- safety, scaling and shutdown -----------------------------------------------------------


def test_pods_run_unprivileged_on_a_read_only_root(rendered: list[dict[str, Any]]) -> None:
    uid = dockerfile_uid()
    for resource in rendered:
        for template in pod_templates(resource):
            spec = template["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["runAsUser"] == uid  # the image's own user
            assert spec["automountServiceAccountToken"] is False
            volumes = {v["name"]: v for v in spec["volumes"]}
            for container in spec["containers"]:
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True
                assert security["allowPrivilegeEscalation"] is False
                assert security["capabilities"]["drop"] == ["ALL"]
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                assert "emptyDir" in volumes[mounts["/tmp"]]
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][bound])


def test_replicas_follow_each_workers_scaling_rule(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    # The outbox: one leader (advisory lock) and one standby; a third does nothing.
    assert deployments["waymark-worker-outbox"]["spec"]["replicas"] == 2
    for deployment in deployments.values():
        assert deployment["spec"]["replicas"] >= 2  # no single point of failure
    autoscalers = by_kind(rendered, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in autoscalers.values()} == AUTOSCALED
    for hpa in autoscalers.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    budgets = by_kind(rendered, "PodDisruptionBudget").values()
    for name, deployment in deployments.items():
        matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], deployment)]
        assert len(matching) == 1, name
        assert matching[0]["spec"]["maxUnavailable"] == 1


def test_selectors_match_their_own_pods(rendered: list[dict[str, Any]]) -> None:
    for deployment in by_kind(rendered, "Deployment").values():
        assert selects(deployment["spec"]["selector"]["matchLabels"], deployment)
    workloads = [r for r in rendered if pod_templates(r)]
    for policy in by_kind(rendered, "NetworkPolicy").values():
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert any(selects(selector, w) for w in workloads), policy["metadata"]["name"]


def test_shutdown_grace_fits_in_the_termination_grace(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    worker_grace = float(config(rendered)["WAYMARK_WORKER_SHUTDOWN_GRACE"])
    for name, deployment in deployments.items():
        spec = pod_templates(deployment)[0]["spec"]
        (container,) = spec["containers"]
        pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        needed = api_drain_seconds(config(rendered)) if name == "waymark-api" else worker_grace
        assert spec["terminationGracePeriodSeconds"] > pause + needed, name


def api_drain_seconds(settings: dict[str, str]) -> float:
    """How long `waymark serve` drains open requests after SIGTERM: the setting
    (WAYMARK_API_SHUTDOWN_GRACE) where it exists, else the CLI's constant."""
    field = Settings.model_fields.get("api_shutdown_grace")
    if field is None:
        return float(cli.GRACEFUL_SHUTDOWN_SECONDS)  # type: ignore[attr-defined]
    return float(settings.get("WAYMARK_API_SHUTDOWN_GRACE", field.default))


def selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    labels = pod_templates(workload)[0]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


def dockerfile_uid() -> int:
    """The numeric USER of the Dockerfile's final stage."""
    users = [
        shlex.split(line)[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    return int(users[-1].split(":")[0])


def test_the_service_monitor_scrapes_every_service_port() -> None:
    # A CRD: no schema offline, so its shape is checked here.
    (monitor,) = render(K8S / "monitoring")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = by_kind(render(FOLDERS["production"]), "Service").values()
    scraped = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in scraped} == {"waymark-api", "waymark-workers"}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    for service in scraped:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
