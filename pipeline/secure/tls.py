"""TLS for a Dask scheduler that is not on this machine, or a refusal that says why.

A Dask scheduler runs whatever it is sent: anyone who can reach a plain-TCP scheduler
can run code on every worker, and every byte of evidence crosses the network in clear
text. So exhibit speaks TLS with mutual certificates to a scheduler elsewhere, from the
options ``dask scheduler``/``dask worker`` use (``--tls-ca-file``, ``--tls-cert``,
``--tls-key``) or from Dask's own configuration (``distributed.comm.tls.ca-file``,
``distributed.comm.tls.client.cert``/``.key``, ``distributed.comm.require-encryption``),
and refuses a non-local scheduler without it unless the examiner says ``--insecure``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

INSECURE_REASON = (
    "evidence would cross the network in clear text, and a Dask scheduler without TLS runs"
    " whatever code anyone who reaches it sends"
)


class InsecureClusterError(ValueError):
    """A non-local scheduler without TLS, and no ``--insecure``."""


@dataclass(frozen=True)
class TlsOptions:
    ca_file: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False


def is_local(address: str) -> bool:
    """True when ``address`` names this machine (loopback, or an in-process/IPC comm)."""
    scheme, _, rest = address.rpartition("://")
    if scheme in ("inproc", "ucx") and not rest:
        return True
    if scheme == "inproc":
        return True
    host = urlsplit(f"//{rest}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cluster_security(scheduler: str | None, tls: TlsOptions) -> Any:
    """The ``distributed.Security`` to reach ``scheduler`` with, or None for a local cluster.

    Raises ``InsecureClusterError`` (with the reason) for a non-local scheduler without
    TLS unless ``tls.insecure``; ``ValueError`` for half-given TLS options.
    """
    given = [tls.ca_file, tls.cert, tls.key]
    if any(given) and not all(given):
        raise ValueError("--tls-ca-file, --tls-cert and --tls-key go together (the CA that"
                         " signed the cluster's certificates, and this client's certificate"
                         " and key)")
    if scheduler is None:
        if any(given):
            raise ValueError("--tls-* options need --scheduler (a local cluster stays on this"
                             " machine)")
        return None
    from distributed import Security  # ~0.6 s: only for a scheduler elsewhere

    if all(given):
        security = Security(tls_ca_file=tls.ca_file, tls_client_cert=tls.cert,
                            tls_client_key=tls.key, require_encryption=True)
    else:
        security = Security()  # distributed.comm.tls.* and require-encryption from config
    encrypted = bool(security.tls_ca_file and security.tls_client_cert)
    if encrypted and not scheduler.startswith("tls://"):
        raise ValueError(f"TLS is configured but the scheduler address {scheduler} is not"
                         f" tls://; give tls://{scheduler.rpartition('://')[2]}")
    if not encrypted and not is_local(scheduler) and not tls.insecure:
        raise InsecureClusterError(
            f"refusing the scheduler {scheduler} without TLS: {INSECURE_REASON}. Give"
            " --tls-ca-file, --tls-cert and --tls-key (or Dask's distributed.comm.tls"
            " configuration), or --insecure to accept the risk (recorded in the ledger)")
    return security


def describe(security: Any, tls: TlsOptions) -> dict[str, Any]:
    """What the ledger says of the connection: TLS or not, never a key."""
    encrypted = bool(security is not None and security.tls_ca_file
                     and security.tls_client_cert)
    return {"tls": encrypted, "insecure_accepted": tls.insecure and not encrypted}
