"""An in-memory Kubernetes API for the use-case tests (httpx's MockTransport idea): the calls an issuance, a
revocation and a repair make, answered the way kube-apiserver answers them (KUBE-SEMANTICS.md), with no server.

It implements broker.kube.Transport, so the real Cluster, resource modules, retries, failure table and token
verifier run on top of it. `journal` lists every round trip as "METHOD path" in order; `fail_next` makes the
next call matching a method and path suffix fail with a status (a Status body) or with no answer at all.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from broker.kube import Cluster, ClusterTokenVerifier, KubeApiError, KubeTransportError, Response, RetryPolicy
from broker.usecases.clusters import ClusterHandle
from support.signing import ISSUER, Key, rsa_key

SERVER = "https://memory.kube.invalid"
NO_RETRY = RetryPolicy(attempts=1)
_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@dataclass
class Failure:
    method: str
    suffix: str
    status: int | None  # None: no answer (a timeout)
    times: int = 1


@dataclass
class MemoryKube:
    """Objects by (resource, namespace, name). Every namespace in `namespaces` exists, with its labels."""

    namespaces: dict[str, dict[str, str]] = field(default_factory=lambda: {"ci": {}, "default": {}})
    key: Key = field(default_factory=rsa_key)
    # the key the JWKS publishes (None: `key`, the one that signs)
    jwks_key: Key | None = None
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    journal: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- what tests use ----------------------------------------------------------------------------------------
    def cluster(self, name: str = "mem", retry: RetryPolicy = NO_RETRY) -> Cluster:
        return Cluster.over(name, self, server_url=SERVER, retry=retry)

    def handle(self, name: str = "mem") -> ClusterHandle:
        cluster = self.cluster(name)
        return ClusterHandle(name, cluster, ClusterTokenVerifier(cluster.discovery), SERVER, None)

    def fail_next(self, method: str, suffix: str, status: int | None, *, times: int = 1) -> None:
        self.failures.append(Failure(method, suffix, status, times))

    def secrets(self, namespace: str = "ci") -> list[dict[str, Any]]:
        return [o for (kind, ns, _), o in self.objects.items() if kind == "secrets" and ns == namespace]

    def calls(self, prefix: str = "") -> list[str]:
        return [c for c in self.journal if c.startswith(prefix)]

    # -- Transport -----------------------------------------------------------------------------------------------
    async def close(self) -> None:
        return None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
    ) -> Response:
        self.journal.append(f"{method} {path}")
        self._injected(method, path)
        status, answer = self._route(method, path.strip("/").split("/"), dict(body or {}), dict(params or {}))
        if status >= 400:
            raise KubeApiError(
                status,
                _REASONS.get(status, "Unknown"),
                answer.get("message", ""),
                answer.get("details", {}),
                None,
                method,
                path,
            )
        return Response(status, CIMultiDictProxy(CIMultiDict()), answer)

    def _injected(self, method: str, path: str) -> None:
        for failure in self.failures:
            if failure.method == method and path.endswith(failure.suffix) and failure.times > 0:
                failure.times -= 1
                if failure.status is None:
                    raise KubeTransportError("timeout", "no answer within the request timeout", method, path)
                raise KubeApiError(
                    failure.status,
                    _REASONS.get(failure.status, "Unknown"),
                    "injected",
                    {},
                    None,
                    method,
                    path,
                )

    # -- the API ------------------------------------------------------------------------------------------------
    def _route(
        self, method: str, parts: list[str], body: dict[str, Any], params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if parts == [".well-known", "openid-configuration"]:
            return 200, {"issuer": ISSUER, "jwks_uri": ISSUER + "/openid/v1/jwks"}
        if parts == ["openid", "v1", "jwks"]:
            return 200, {"keys": [(self.jwks_key or self.key).jwk()]}
        if parts == ["version"]:
            return 200, {"gitVersion": "v1.34.4"}
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 4:
            return 404, {"message": "the server could not find the requested resource"}
        namespace, rest = parts[3], parts[4:]
        if namespace not in self.namespaces:
            return 404, {
                "message": f'namespaces "{namespace}" not found',
                "details": {"name": namespace, "kind": "namespaces"},
            }
        if not rest:
            return 200, {"metadata": {"name": namespace, "labels": self.namespaces[namespace]}}
        if rest[-1] == "token" and len(rest) == 3:
            return self._token_request(namespace, rest[1], body)
        return self._object(method, rest[0], namespace, rest[1] if len(rest) > 1 else "", body, params)

    def _object(
        self, method: str, kind: str, namespace: str, name: str, body: dict[str, Any], params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if method == "POST":
            return self._create(kind, namespace, body)
        if method == "GET" and not name:
            wanted = dict(p.split("=", 1) for p in params.get("labelSelector", "").split(",") if p)
            items = [
                o
                for (k, ns, _), o in self.objects.items()
                if k == kind
                and ns == namespace
                and all(o["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
            ]
            return 200, {"items": items}
        found = self.objects.get((kind, namespace, name))
        if found is None:
            return 404, {"message": f'{kind} "{name}" not found', "details": {"name": name, "kind": kind}}
        if method == "DELETE":
            uid = (body.get("preconditions") or {}).get("uid")
            if uid and uid != found["metadata"]["uid"]:
                return 409, {"message": f"Precondition failed: UID in precondition: {uid}"}
            del self.objects[(kind, namespace, name)]
        return 200, found

    def _create(self, kind: str, namespace: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meta = dict(body.get("metadata") or {})
        name = meta.get("name", "")
        if (kind, namespace, name) in self.objects:
            return 409, {
                "message": f'{kind} "{name}" already exists',
                "details": {"name": name, "kind": kind},
            }
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), resourceVersion=str(next(self._versions)))
        created = {**body, "metadata": meta}
        self.objects[(kind, namespace, name)] = created
        return 201, created

    def _token_request(
        self, namespace: str, account: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        sa = self.objects.get(("serviceaccounts", namespace, account))
        if sa is None:
            return 404, {
                "message": f'serviceaccounts "{account}" not found',
                "details": {"name": account, "kind": "serviceaccounts"},
            }
        spec = body.get("spec") or {}
        kube: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": account, "uid": sa["metadata"]["uid"]},
        }
        ref = spec.get("boundObjectRef")
        if ref is not None:
            secret = self.objects.get(("secrets", namespace, ref["name"]))
            if secret is None:
                return 404, {
                    "message": f'secrets "{ref["name"]}" not found',
                    "details": {"name": ref["name"], "kind": "secrets"},
                }
            if ref.get("uid") and ref["uid"] != secret["metadata"]["uid"]:
                return 409, {"message": "the UID in the bound object reference differs from the object's"}
            kube["secret"] = {"name": ref["name"], "uid": secret["metadata"]["uid"]}
        seconds = int(spec.get("expirationSeconds", 3600))
        now = int(time.time())
        claims = {
            "aud": spec.get("audiences") or [ISSUER],
            "exp": now + seconds,
            "iat": now,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": kube,
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{account}",
        }
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + seconds))
        return 201, {
            "spec": {**spec, "expirationSeconds": seconds},
            "status": {"token": self.key.sign(claims), "expirationTimestamp": expires},
        }
