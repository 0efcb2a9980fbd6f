"""Accept-header negotiation as go-restful does it for kube-apiserver's routes (jsr311.go, Route.matchesAccept):
a media type's parameters are ignored, only `*/*` is a wildcard (`application/*` is not), and a request no
route can produce for is a 406 Status naming what the route offers."""

from __future__ import annotations

from .status import ApiError

# what the resource routes produce (pkg/endpoints/installer.go: the serializers' media types)
RESOURCE_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
STREAM_TYPES = ("application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")


def accepts(accept: str, produces: tuple[str, ...]) -> bool:
    if not accept.strip():
        return True
    bare_produces = {p.split(";")[0] for p in produces}
    for part in accept.split(","):
        media = part.split(";")[0].strip()
        if media == "*/*" or media in bare_produces:
            return True
    return False


def negotiate(accept: str, produces: tuple[str, ...]) -> None:
    if not accepts(accept, produces):
        raise ApiError(
            406,
            "NotAcceptable",
            "406: Not Acceptable\n\nAvailable representations: " + ", ".join(produces),
            {},
        )


def resource_types(verb: str) -> tuple[str, ...]:
    return RESOURCE_TYPES + STREAM_TYPES if verb in ("list", "watch") else RESOURCE_TYPES
