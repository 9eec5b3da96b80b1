"""A secured Dask cluster: a real ``dask scheduler`` and ``dask worker`` speaking TLS.

Certificates are made here (a CA and one leaf signed by it, ``cryptography``); the
scheduler and worker are the ``dask`` command-line programs in subprocesses, the worker
reading the evidence store's configuration from its own environment (as a worker on
another machine would). The image is an object in a real S3 server (moto) on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import sha256_file, stop_processes
from pipeline_helpers import REPO, exhibit, export_jsonl, ledger_entries
from s3_server import BUCKET, S3Server

URL = f"s3://{BUCKET}/raw/sample.dd"


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, and a certificate for 127.0.0.1/localhost it signed (server and client use)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("exhibit test CA"))
          .issuer_name(name("exhibit test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("exhibit node"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = {"ca": folder / "ca.pem", "cert": folder / "node.pem", "key": folder / "node.key"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dask exited {proc.returncode}: {proc.stderr.read()}")
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("the dask scheduler did not start")


def dask_bin() -> str:
    return str(Path(sys.executable).parent / "dask")


@pytest.fixture(scope="module")
def store(sample_raw: Path) -> Iterator[S3Server]:
    server = S3Server().start()
    server.setup({"raw/sample.dd": sample_raw})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_cluster(store: S3Server, certs: dict[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler --protocol tls`` and one ``dask worker``, both with certificates."""
    port = free_port()
    tls = ["--tls-ca-file", str(certs["ca"]), "--tls-cert", str(certs["cert"]),
           "--tls-key", str(certs["key"])]
    env = dict(os.environ, PYTHONPATH=str(REPO),
               **store.env(tmp_path_factory.mktemp("worker-aws")))
    scheduler = subprocess.Popen(
        [dask_bin(), "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port",
         str(port), "--no-dashboard", *tls], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    procs = [scheduler]
    try:
        wait_for_port(port, scheduler)
        address = f"tls://127.0.0.1:{port}"
        procs.append(subprocess.Popen(
            [dask_bin(), "worker", address, "--nthreads", "1", "--nworkers", "1",
             "--no-dashboard", "--host", "127.0.0.1", *tls], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO))
        yield address
    finally:
        stop_processes(procs)


def test_triage_by_url_on_a_tls_cluster(store: S3Server, tls_cluster: str,
                                        certs: dict[str, Path], sample_raw: Path,
                                        tmp_path: Path) -> None:
    local = tmp_path / "local"
    exhibit("triage", sample_raw, "--case", local, "--workers", "1", "--no-progress")
    case = tmp_path / "case"
    mark = store.mark()
    exhibit("triage", URL, "--case", case, "--scheduler", tls_cluster, "--no-progress",
            "--tls-ca-file", certs["ca"], "--tls-cert", certs["cert"], "--tls-key",
            certs["key"], env=store.env(tmp_path / "aws"))
    assert store.methods_since(mark) <= {"GET", "HEAD"}
    started = next(e for e in ledger_entries(case) if e["action"] == "triage.started")
    assert started["details"]["scheduler"] == tls_cluster
    assert started["details"]["tls"] is True
    analysis = next(e for e in ledger_entries(case) if e["action"] == "analysis.started")
    assert analysis["details"]["cluster"]["workers"] == 1
    hashed = next(e for e in ledger_entries(case) if e["action"] == "acquisition.hashed")
    assert hashed["details"]["sha256"] == sha256_file(sample_raw)
    assert export_jsonl(case) == export_jsonl(local)
    assert store.secret.encode() not in (case / "ledger.jsonl").read_bytes()


def test_the_dask_config_gives_the_same_tls(store: S3Server, tls_cluster: str,
                                            certs: dict[str, Path], tmp_path: Path) -> None:
    """``distributed.comm.tls.*`` (here as DASK_ variables) instead of the options."""
    env = dict(store.env(tmp_path / "aws"), DASK_DISTRIBUTED__COMM__TLS__CA_FILE=str(certs["ca"]),
               DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT=str(certs["cert"]),
               DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY=str(certs["key"]))
    case = tmp_path / "case"
    exhibit("triage", URL, "--case", case, "--scheduler", tls_cluster, "--no-progress",
            "--analyzers", "filetype", "--no-expand", env=env)
    started = next(e for e in ledger_entries(case) if e["action"] == "triage.started")
    assert started["details"]["tls"] is True


def test_a_plain_tcp_client_is_refused(tls_cluster: str, certs: dict[str, Path],
                                       tmp_path: Path) -> None:
    from distributed import Client, Security

    plain = tls_cluster.replace("tls://", "tcp://")
    with pytest.raises((OSError, TimeoutError)):
        Client(plain, timeout="5s")
    # TLS with a certificate another CA signed: the scheduler refuses it too.
    stranger = make_certificates(tmp_path)
    with pytest.raises((OSError, TimeoutError)):
        Client(tls_cluster, timeout="5s", security=Security(
            tls_ca_file=str(certs["ca"]), tls_client_cert=str(stranger["cert"]),
            tls_client_key=str(stranger["key"]), require_encryption=True))
    with Client(tls_cluster, timeout="30s", security=Security(
            tls_ca_file=str(certs["ca"]), tls_client_cert=str(certs["cert"]),
            tls_client_key=str(certs["key"]), require_encryption=True)) as client:
        client.wait_for_workers(1, timeout=60)
        assert client.scheduler_info()["workers"]


def _outward_address() -> str | None:
    """An address of this machine that is not loopback (a 'non-local' scheduler)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent for UDP connect
            host = sock.getsockname()[0]
        except OSError:
            return None
    return None if ipaddress.ip_address(host).is_loopback else host


def test_a_non_local_scheduler_without_tls_is_refused_unless_insecure(
        sample_raw: Path, tmp_path: Path) -> None:
    host = _outward_address()
    assert host is not None, "this machine needs a non-loopback address for this test"
    port = free_port()
    scheduler = subprocess.Popen(
        [dask_bin(), "scheduler", "--host", host, "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs = [scheduler]
    try:
        wait_for_port(port, scheduler, host)
        address = f"tcp://{host}:{port}"
        procs.append(subprocess.Popen(
            [dask_bin(), "worker", address, "--nthreads", "1", "--no-dashboard"],
            env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        refused = exhibit("triage", sample_raw, "--case", tmp_path / "refused",
                          "--scheduler", address, "--no-progress", check=False)
        assert refused.returncode == 2
        assert "clear text" in refused.stderr and "runs whatever" in refused.stderr
        assert not (tmp_path / "refused").exists(), "refused before touching the case"
        case = tmp_path / "accepted"
        exhibit("triage", sample_raw, "--case", case, "--scheduler", address, "--insecure",
                "--no-progress", "--analyzers", "filetype", "--no-expand")
        started = next(e for e in ledger_entries(case) if e["action"] == "triage.started")
        assert started["details"]["tls"] is False
        assert started["details"]["insecure_accepted"] is True
    finally:
        stop_processes(procs)


@pytest.mark.parametrize(("address", "local"), [
    ("tcp://127.0.0.1:8786", True), ("tls://localhost:8786", True), ("tcp://[::1]:8786", True),
    ("tcp://10.0.0.5:8786", False), ("tls://dask.lab.example:8786", False),
    ("inproc://x/1/2", True)])
def test_which_schedulers_are_local(address: str, local: bool) -> None:
    from pipeline.secure.tls import is_local

    assert is_local(address) is local
