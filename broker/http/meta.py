"""Who am I, which roles may I use, is the broker alive and ready, and the API description."""

from __future__ import annotations

import asyncio
import base64
import logging

from aiohttp import web

from broker.http.auth import authenticate
from broker.http.keys import ISSUANCE, OPENAPI_DOCUMENT
from broker.http.models import Health, RoleList, RoleView, WhoAmI
from broker.http.problem import problem_response
from broker.http.request_id import REQUEST_ID_KEY
from broker.usecases.ports import RoleInfo

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 5.0
READY_RETRY_AFTER_SECONDS = 5.0


def role_view(role: RoleInfo) -> RoleView:
    return RoleView(
        name=role.name,
        description=role.description,
        cluster=role.cluster,
        namespaces=list(role.namespaces),
        default_ttl=role.default_ttl,
        max_ttl=role.max_ttl,
        mode=role.mode,
        revocable=role.revocable,
        cluster_server=role.cluster_server,
        cluster_ca_data=base64.b64encode(role.cluster_ca_pem).decode() if role.cluster_ca_pem else None,
    )


def _json(model: Health | RoleList | WhoAmI) -> web.Response:
    return web.Response(text=model.model_dump_json(), content_type="application/json")


async def whoami(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    roles = request.app[ISSUANCE].usable_roles(caller)
    doc = WhoAmI(
        user=caller.user,
        groups=list(caller.groups),
        method=caller.method,
        roles=[r.name for r in roles],
        # what bound claims are matched against, so a CI author can see why a grant does not apply;
        # the claims the caller's own token carries, never the token itself
        claims=dict(caller.claims) or None,
    )
    return web.Response(text=doc.model_dump_json(exclude_none=True), content_type="application/json")


async def roles(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    return _json(RoleList(roles=[role_view(r) for r in request.app[ISSUANCE].usable_roles(caller)]))


async def healthz(request: web.Request) -> web.Response:
    return _json(Health())


async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            failing = await request.app[ISSUANCE].ready()
    except TimeoutError:
        failing = ["readiness check (timed out)"]
    except Exception:
        # a readiness probe that cannot tell is a "not ready", not a 500
        log.exception("readiness check failed")
        failing = ["readiness check (error)"]
    if not failing:
        return _json(Health())
    log.warning("not ready: %s", ", ".join(failing))
    return problem_response(
        503,
        f"not ready: {', '.join(failing)}",
        type_slug="not-ready",
        request_id=request.get(REQUEST_ID_KEY),
        retry_after=READY_RETRY_AFTER_SECONDS,
        extra={"failing": failing},
    )


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_DOCUMENT])
