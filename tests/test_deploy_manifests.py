"""The deployment recipes in docs/deploy/ hold together (no cluster runs here, so they are read).

Parsed with PyYAML; every ``dask scheduler``/``dask worker`` option they use is checked
against the real programs' ``--help``; names that must agree (service and address, secret
and mount, labels the Dask operator sets) are compared.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import REPO

DEPLOY = REPO / "docs" / "deploy"
TLS_OPTIONS = ("--tls-ca-file", "--tls-cert", "--tls-key")


def dask_help(command: str) -> str:
    dask = str(Path(sys.executable).parent / "dask")
    return subprocess.run([dask, command, "--help"], capture_output=True, text=True,
                          check=True).stdout


def options_of(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith("--")]


def check_dask_args(args: list[str]) -> None:
    """``dask scheduler|worker …``: every option exists, and TLS is complete."""
    assert args[0] == "dask" and args[1] in ("scheduler", "worker")
    known = set(re.findall(r"--[a-z][a-z-]+", dask_help(args[1])))
    unknown = [o for o in options_of(args) if o not in known]
    assert unknown == [], f"dask {args[1]} has no option(s) {unknown}"
    for option in TLS_OPTIONS:
        assert option in args, f"dask {args[1]} without {option}"
    cert_dir = {Path(args[args.index(o) + 1]).parent for o in TLS_OPTIONS}
    assert cert_dir == {Path("/certs")}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_has_a_tls_scheduler_workers_and_minio(compose: dict) -> None:
    services = compose["services"]
    assert set(services) >= {"minio", "scheduler", "worker"}
    scheduler, worker = services["scheduler"], services["worker"]
    check_dask_args(scheduler["command"])
    check_dask_args(worker["command"])
    assert scheduler["command"][scheduler["command"].index("--protocol") + 1] == "tls"
    port = scheduler["command"][scheduler["command"].index("--port") + 1]
    assert worker["command"][2] == f"tls://scheduler:{port}"
    for service in (scheduler, worker):  # the anchor merged in: image, certificates
        assert service["image"] == "exhibit:latest"
        assert "./certs:/certs:ro" in service["volumes"]
    env = worker["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    minio_port = services["minio"]["ports"][0].split(":")[-1]
    assert env["AWS_ENDPOINT_URL"].endswith(f":{minio_port}")
    # Secrets come from .env, never written in the file.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?.+\}", env[name])
    assert set(worker["depends_on"]) == {"scheduler", "minio"}


def test_the_container_image_installs_every_room() -> None:
    from test_layout import ROOMS

    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\S+) \1$", text, re.MULTILINE))
    assert copied == set(ROOMS)
    assert "pip install" in text and re.search(r"^USER (?!root)", text, re.MULTILINE)
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    runtime = re.search(r"^RUNTIME_PACKAGES := (.+)$", makefile, re.MULTILINE)[1].split()
    assert all(package in text for package in runtime)


@pytest.fixture(scope="module")
def daskcluster() -> dict:
    return yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text(
        encoding="utf-8"))


def test_the_daskcluster_resource_is_what_the_operator_reads(daskcluster: dict) -> None:
    assert daskcluster["apiVersion"] == "kubernetes.dask.org/v1"
    assert daskcluster["kind"] == "DaskCluster"
    name = daskcluster["metadata"]["name"]
    spec = daskcluster["spec"]
    assert isinstance(spec["worker"]["replicas"], int) and spec["worker"]["replicas"] >= 1
    (scheduler,) = spec["scheduler"]["spec"]["containers"]
    (worker,) = spec["worker"]["spec"]["containers"]
    check_dask_args(scheduler["args"])
    check_dask_args(worker["args"])
    service = spec["scheduler"]["service"]
    # The operator names the service <cluster>-scheduler and labels the scheduler pod so.
    assert service["selector"] == {"dask.org/cluster-name": name,
                                   "dask.org/component": "scheduler"}
    (comm,) = [p for p in service["ports"] if p["name"] == service["ports"][0]["name"]]
    container_ports = {p["name"]: p["containerPort"] for p in scheduler["ports"]}
    assert comm["targetPort"] in container_ports
    assert str(container_ports[comm["targetPort"]]) == scheduler["args"][
        scheduler["args"].index("--port") + 1]
    assert worker["args"][2] == f"tls://{name}-scheduler:{comm['port']}"
    for role in ("scheduler", "worker"):
        pod = spec[role]["spec"]
        mounts = {m["name"] for c in pod["containers"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
        assert mounts <= set(volumes)
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert worker["envFrom"][0]["secretRef"]["name"]
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert "AWS_SECRET_ACCESS_KEY" not in env and env["AWS_ENDPOINT_URL"].startswith("http")


def test_the_hpc_example_is_in_the_docs() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "dask_jobqueue" in text and "SLURMCluster" in text and "Security(" in text
