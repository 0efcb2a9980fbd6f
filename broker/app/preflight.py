"""Load every file a config names the way `serve` loads it, and say what is wrong with each as
`config-file: key.path: problem` — so `config check` that passes means `serve` will not trip over a file.

What is loaded: the serving certificate and key and the client CA (the TLS context `serve` builds), each
cluster's kubeconfig with its context, certificates and keys (or the in-cluster token and CA), each cluster's
ca_file, each OIDC issuer's ca_file, and the directories the audit store and its JSON-lines copy are written
to. Nothing is contacted: reachability is for /readyz. A kubeconfig whose user is an exec plugin runs that
plugin, as `serve` does.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

from cryptography import x509

from broker._kits.tls import tls_reason
from broker.callers.oidc import issuer_ssl_context
from broker.http.tls import server_ssl_context
from broker.kube.transport import ClusterConfigError, load_connection
from broker.settings import BrokerConfig, ConfigError, ConfigProblem

from .streaming import stream_file_problems


def check_files(path: Path, cfg: BrokerConfig) -> None:
    """Raise ConfigError naming every file problem; return when there is none."""
    problems = [
        *_server_tls(cfg),
        *asyncio.run(_clusters(cfg)),
        *_oidc(cfg),
        *_audit(cfg),
        *(ConfigProblem(key, problem) for key, problem in stream_file_problems(cfg.audit)),
    ]
    if problems:
        raise ConfigError(path, problems)


def _readable(key: str, path: Path, what: str) -> ConfigProblem | None:
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        return ConfigProblem(key, f"{what} {path}: {exc.strerror or exc}")
    return None


def _pem_certificates(key: str, path: Path, what: str) -> ConfigProblem | None:
    problem = _readable(key, path, what)
    if problem is not None:
        return problem
    try:
        x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError:
        return ConfigProblem(key, f"{what} {path}: no PEM certificate in it")
    return None


def _server_tls(cfg: BrokerConfig) -> list[ConfigProblem]:
    server = cfg.server
    problems = [
        p
        for p in (
            _pem_certificates("server.tls_cert", server.tls_cert, "certificate"),
            _readable("server.tls_key", server.tls_key, "key"),
            _pem_certificates("server.client_ca", server.client_ca, "client CA bundle")
            if server.client_ca is not None
            else None,
        )
        if p is not None
    ]
    if problems:
        return problems
    try:
        server_ssl_context(server.tls_cert, server.tls_key, server.client_ca)
    except (OSError, ssl.SSLError) as exc:
        return [
            ConfigProblem("server.tls_key", f"{server.tls_key} with {server.tls_cert}: {tls_reason(exc)}")
        ]
    return []


async def _clusters(cfg: BrokerConfig) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for i, cluster in enumerate(cfg.clusters):
        where = f"clusters[{i}]"
        try:
            await load_connection(
                kubeconfig=cluster.kubeconfig, context=cluster.context, in_cluster=cluster.in_cluster
            )
        except ClusterConfigError as exc:
            key = f"{where}.in_cluster" if cluster.in_cluster else f"{where}.kubeconfig"
            problems.append(ConfigProblem(key, str(exc)))
        if cluster.ca_file is not None:
            problem = _pem_certificates(f"{where}.ca_file", cluster.ca_file, "CA bundle")
            if problem is not None:
                problems.append(problem)
    return problems


def _oidc(cfg: BrokerConfig) -> list[ConfigProblem]:
    problems = []
    for i, issuer in enumerate(cfg.auth.oidc):
        if issuer.ca_file is None:
            continue
        try:
            issuer_ssl_context(str(issuer.ca_file))
        except ValueError as exc:
            problems.append(ConfigProblem(f"auth.oidc[{i}].ca_file", str(exc)))
    return problems


def _audit(cfg: BrokerConfig) -> list[ConfigProblem]:
    audit = cfg.audit
    targets: list[tuple[str, Path]] = []
    if audit.backend == "sqlite":
        targets.append(("audit.sqlite_path", audit.sqlite_path))
    if audit.jsonl_path not in (None, "-"):
        targets.append(("audit.jsonl_path", Path(str(audit.jsonl_path))))
    problems = []
    for key, target in targets:
        directory = target.parent
        if not directory.is_dir():
            problems.append(ConfigProblem(key, f"{target}: directory {directory} does not exist"))
        elif target.exists() and not os.access(target, os.R_OK | os.W_OK):
            problems.append(ConfigProblem(key, f"{target}: not readable and writable by this user"))
        elif not target.exists() and not os.access(directory, os.W_OK | os.X_OK):
            problems.append(ConfigProblem(key, f"{target}: cannot create files in {directory}"))
    return problems
