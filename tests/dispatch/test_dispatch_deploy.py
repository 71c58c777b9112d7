"""The deployment files parse and name what the service and the dispatcher really read (no cluster runs
here, and Docker does not either: these checks are what can be verified on this machine)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from dispatch.settings import DispatchSettings
from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def load(name: str) -> dict:
    docs = [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    assert len(docs) == 1
    return docs[0]


def container(manifest: dict) -> dict:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def run_sh_default(variable: str) -> str:
    match = re.search(rf'{variable}="\$\{{{variable}:-([^}}]*)\}}"', (ROOT / "run.sh").read_text())
    assert match, f"run.sh sets no default for {variable}"
    return match.group(1)


@pytest.fixture(scope="module")
def service_paths(tmp_path_factory) -> set[str]:
    from api_app import create_app

    out = tmp_path_factory.mktemp("svc")
    app = create_app(Settings(sadtalker_output_dir=out, sadtalker_checkpoint_dir=out))
    return set(app.openapi()["paths"])


def test_api_deployment_matches_the_service(service_paths):
    manifest = load("sadtalker-deployment.yaml")
    assert manifest["kind"] == "Deployment"
    pod = manifest["spec"]["template"]["spec"]
    c = container(manifest)
    assert c["image"] == "your-registry/sadtalker-api:latest"
    (port,) = c["ports"]
    assert port["name"] == "http" and str(port["containerPort"]) == run_sh_default("API_PORT")
    env = env_of(c)
    assert env["API_PORT"]["value"] == str(port["containerPort"])
    for name in env:  # every variable set is one the service reads
        assert name.lower() in Settings.model_fields, name
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e}
    assert secrets == {"ai-secrets"} and env["API_KEYS"]["valueFrom"]["secretKeyRef"]["key"] == "SADTALKER_API_KEYS"
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"/readyz", "/healthz"} <= service_paths
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1 == c["resources"]["limits"]["nvidia.com/gpu"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    assert claims == {"checkpoints": "sadtalker-checkpoints-pvc", "outputs": "sadtalker-outputs-pvc"}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env["SADTALKER_CHECKPOINT_DIR"]["value"] == mounts["checkpoints"]
    assert env["SADTALKER_OUTPUT_DIR"]["value"] == mounts["outputs"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > float(run_sh_default("SADTALKER_SHUTDOWN_GRACE_S"))


def test_service_routes_to_the_api_pods():
    service, deployment = load("sadtalker-service.yaml"), load("sadtalker-deployment.yaml")
    assert service["kind"] == "Service"
    assert service["spec"]["sessionAffinity"] == "ClientIP"  # polls reach the pod that holds the job
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == container(deployment)["ports"][0]["name"]


def test_worker_manifest_sets_only_dispatcher_variables():
    manifest = load("sadtalker-dispatch-worker.yaml")
    c = container(manifest)
    assert c["command"][-2:] == ["-m", "dispatch.worker"] and c["image"] == "your-registry/sadtalker-api:latest"
    names = {alias for field in DispatchSettings.model_fields.values() for alias in field.validation_alias.choices}
    env = env_of(c)
    assert set(env) <= names, set(env) - names
    assert "SADTALKER_REDIS_URL" in env and "nvidia.com/gpu" not in str(c.get("resources"))
    values = {name: e["value"] for name, e in env.items() if "value" in e}
    settings = DispatchSettings(**values)  # the literal values validate
    grace_ms = manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] * 1000
    assert settings.job_timeout_ms <= settings.drain_timeout_ms < grace_ms


def test_dockerfile_runs_run_sh_as_a_user_with_checkpoints_on_a_volume():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:\S+-runtime-\S+$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert re.search(r'^CMD \["/app/run.sh"\]$', text, re.M)
    assert f"EXPOSE {run_sh_default('API_PORT')}" in text
    checkpoint_dir = re.search(r"SADTALKER_CHECKPOINT_DIR=(\S+)", text).group(1)
    assert re.search(rf'^VOLUME \[.*"{checkpoint_dir}".*\]$', text, re.M)
    assert "SADTALKER_VENV=/opt/venv" in text and ".requirements.sha256" in text  # run.sh's install stamp
    assert os.access(ROOT / "run.sh", os.X_OK) and ".requirements.sha256" in (ROOT / "run.sh").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "checkpoints/*", "**/node_modules"} <= set(ignored)
