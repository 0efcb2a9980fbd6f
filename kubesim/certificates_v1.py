"""certificates.k8s.io/v1 CertificateSigningRequests, as pkg/registry/certificates/certificates and
pkg/apis/certificates/validation define them, with the `approval` and `status` subresources and the admission
plugins that guard them (CertificateApproval, CertificateSigning, CertificateSubjectRestriction).

The server stamps spec.username/uid/groups/extra from the requester and clears status on create; updates of the
object itself change metadata only; `approval` changes the conditions only; `status` everything in status but
the Approved/Denied conditions. Signing is csr_signer's (kube-controller-manager's work).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from . import status
from .context import SimContext
from .rbac import Attributes, decide
from .resources import Requester, Strategy, Subresource, cannot_handle, deep
from .state import Obj, ResourceType
from .status import Cause
from .tables import AGE, NAME, Column, human_duration
from .validation import (
    dns1123_label,
    dns1123_subdomain,
    forbidden_cause,
    invalid_cause,
    required_cause,
    unsupported_cause,
)

GROUP = "certificates.k8s.io"
CSRS = ResourceType(
    GROUP,
    "v1",
    "certificatesigningrequests",
    "CertificateSigningRequest",
    False,
    ("csr",),
    ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    singular="certificatesigningrequest",
)
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
VALID_USAGES = sorted(
    [
        "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
        "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
        "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
        "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
    ]
)  # fmt: skip
_SPEC_ORDER = ("request", "signerName", "expirationSeconds", "usages", "username", "uid", "groups", "extra")
_CONDITION_FIELDS = ("type", "status", "reason", "message", "lastUpdateTime", "lastTransitionTime")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- decoding (a field of the wrong JSON type is a 400 before anything else) --------------------------------------
def _check_types(obj: Obj) -> None:
    spec = obj.get("spec")
    if spec is None:
        obj["spec"] = spec = {}
    if not isinstance(spec, dict):
        raise cannot_handle(CSRS, "spec", "v1.CertificateSigningRequestSpec", spec)
    for key in ("request",):
        if spec.get(key) is not None:
            _bytes(spec, key, f"spec.{key}")
    for key in ("signerName", "username", "uid"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise cannot_handle(CSRS, f"spec.{key}", "string", spec[key])
    for key in ("usages", "groups"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise cannot_handle(CSRS, f"spec.{key}", "[]string", value)
    seconds = spec.get("expirationSeconds")
    if seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool)):
        raise cannot_handle(CSRS, "spec.expirationSeconds", "int32", seconds)
    state = obj.get("status")
    if state is None:
        obj["status"] = state = {}
    if not isinstance(state, dict):
        raise cannot_handle(CSRS, "status", "v1.CertificateSigningRequestStatus", state)
    conditions = state.get("conditions")
    if conditions is not None and (
        not isinstance(conditions, list)
        or not all(isinstance(c, dict) and all(isinstance(v, str) for v in c.values()) for c in conditions)
    ):
        raise cannot_handle(CSRS, "status.conditions", "[]v1.CertificateSigningRequestCondition", conditions)
    if state.get("certificate") is not None:
        _bytes(state, "certificate", "status.certificate")


def _bytes(holder: dict[str, Any], key: str, path: str) -> bytes:
    value = holder.get(key)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise cannot_handle(CSRS, path, "[]uint8", value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise status.bad_request(
            f'{CSRS.kind} in version "v1" cannot be handled as a {CSRS.kind}: illegal base64 data'
        ) from None


def _ordered_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in _SPEC_ORDER if spec.get(k) not in (None, "", [], {})}


# -- pkg/registry/certificates/certificates: strategies ----------------------------------------------------------
def _prepare(_ctx: SimContext, obj: Obj, old: Obj | None) -> None:
    _check_types(obj)
    if old is None:
        # PrepareForCreate: user info comes from the request (the requester hook), never from the client
        spec = {k: v for k, v in obj["spec"].items() if k not in ("username", "uid", "groups", "extra")}
        obj["spec"] = _ordered_spec(spec)
        obj["status"] = {}
    else:
        obj["spec"], obj["status"] = old.get("spec") or {}, old.get("status") or {}


def _stamp_requester(_ctx: SimContext, requester: Requester, obj: Obj, old: Obj | None) -> None:
    if old is not None:
        return
    user = requester.user
    stamped: dict[str, Any] = {"username": user.username, "uid": user.uid, "groups": list(user.groups)}
    if user.extra:
        stamped["extra"] = {k: list(v) for k, v in user.extra.items()}
    obj["spec"] = _ordered_spec({**obj["spec"], **stamped})


def populate_condition_timestamps(new: Obj, old: Obj) -> None:
    now = now_rfc3339()
    old_conditions = deep(old, "status", "conditions") or []
    for condition in deep(new, "status", "conditions") or []:
        if not condition.get("lastUpdateTime"):
            condition["lastUpdateTime"] = now
        if not condition.get("lastTransitionTime"):
            condition["lastTransitionTime"] = next(
                (
                    c["lastTransitionTime"]
                    for c in old_conditions
                    if (c.get("type"), c.get("status")) == (condition.get("type"), condition.get("status"))
                    and c.get("lastTransitionTime")
                ),
                now,
            )
        ordered = {k: condition[k] for k in _CONDITION_FIELDS if condition.get(k)}
        condition.clear()
        condition.update(ordered)


def _prepare_approval(_ctx: SimContext, obj: Obj, old: Obj | None) -> None:
    assert old is not None
    _check_types(obj)
    populate_condition_timestamps(obj, old)
    conditions = deep(obj, "status", "conditions")
    obj["spec"] = old.get("spec") or {}
    obj["status"] = dict(old.get("status") or {})
    if conditions:
        obj["status"]["conditions"] = conditions
    else:
        obj["status"].pop("conditions", None)


def _prepare_status(_ctx: SimContext, obj: Obj, old: Obj | None) -> None:
    assert old is not None
    _check_types(obj)
    obj["spec"] = old.get("spec") or {}
    conditions = deep(obj, "status", "conditions") or []
    old_conditions = deep(old, "status", "conditions") or []
    for kind in (APPROVED, DENIED):
        # preserveConditionInstances: the Approved/Denied conditions stay as they were (when as many)
        new_at = [i for i, c in enumerate(conditions) if c.get("type") == kind]
        old_of = [c for c in old_conditions if c.get("type") == kind]
        if len(new_at) == len(old_of):
            for i, kept in zip(new_at, old_of, strict=True):
                conditions[i] = dict(kept)
    populate_condition_timestamps(obj, old)
    obj["status"] = {k: v for k, v in obj["status"].items() if v not in (None, "", [])}


# -- pkg/apis/certificates/validation ------------------------------------------------------------------------------
def parse_request(obj: Obj) -> x509.CertificateSigningRequest:
    """certificates.ParseCSR and CheckSignature; ValueError says why, worded as Go does where it can be."""
    raw = _bytes(obj.get("spec") or {}, "request", "spec.request")
    block = _PEM_BLOCK.search(raw)
    if block is None or block.group(1) != b"CERTIFICATE REQUEST":
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(block.group(0))
    except ValueError as err:
        raise ValueError(f"asn1: structure error: {err}") from None
    try:
        valid = csr.is_signature_valid
    except InvalidSignature:
        valid = False
    if not valid:
        key = csr.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("x509: ECDSA verification failure")
        if isinstance(key, rsa.RSAPublicKey):
            raise ValueError("crypto/rsa: verification error")
        raise ValueError("x509: signature verification failure")
    return csr


def _signer_name_causes(path: str, name: str) -> list[Cause]:
    """apivalidation.ValidateSignerName."""
    if not name:
        return [required_cause(path)]
    segments = name.split("/")
    if len(segments) != 2:
        return [
            invalid_cause(
                path, name, "must be a fully qualified domain and path of the form 'example.com/signer-name'"
            )
        ]
    causes: list[Cause] = []
    domain, signer_path = segments
    if len(domain) > 253:
        causes.append(Cause(path, "Too long: may not be more than 253 bytes", "FieldValueTooLong"))
    labels = domain.split(".")
    for label in labels:
        if errs := dns1123_label(label):
            causes.extend(
                invalid_cause(path, domain, f"validating label {json.dumps(label)}: {e}") for e in errs
            )
            break
    if len(labels) < 2:
        causes.append(
            invalid_cause(path, domain, "should be a domain with at least two segments separated by dots")
        )
    for label in signer_path.split("."):
        if errs := dns1123_subdomain(label):
            causes.extend(
                invalid_cause(path, signer_path, f"validating label {json.dumps(label)}: {e}") for e in errs
            )
            break
    limit = 253 + 253 + 63 + 1 + 1
    if len(name) > limit:
        causes.append(Cause(path, f"Too long: may not be more than {limit} bytes", "FieldValueTooLong"))
    return causes


def _conditions_causes(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    conditions = deep(obj, "status", "conditions") or []
    old_conditions = deep(old, "status", "conditions") or [] if old else []
    old_types = [c.get("type") for c in old_conditions]
    tolerate_both = APPROVED in old_types and DENIED in old_types
    tolerate_duplicates = len(old_types) != len(set(old_types))
    tolerate_empty = "" in old_types or None in old_types
    seen: set[str] = set()
    approved = denied = False
    for i, condition in enumerate(conditions):
        path, kind, state = (
            f"status.conditions[{i}]",
            condition.get("type") or "",
            condition.get("status") or "",
        )
        if not kind and not tolerate_empty:
            causes.append(required_cause(f"{path}.type"))
        allowed = ["True"] if kind in (APPROVED, DENIED, FAILED) else ["False", "True", "Unknown"]
        if not state:
            causes.append(required_cause(f"{path}.status"))
        elif state not in allowed:
            causes.append(unsupported_cause(f"{path}.status", state, allowed))
        if not tolerate_both:
            approved, denied = approved or kind == APPROVED, denied or kind == DENIED
            if kind in (APPROVED, DENIED) and approved and denied:
                causes.append(
                    invalid_cause(
                        "status.conditions", kind, "Approved and Denied conditions are mutually exclusive"
                    )
                )
        if kind in seen and not tolerate_duplicates:
            causes.append(
                Cause(f"{path}.type", f"Duplicate value: {json.dumps(kind)}", "FieldValueDuplicate")
            )
        seen.add(kind)
    return causes


def _certificate_error(pem: bytes) -> str | None:
    if not pem:
        return None
    blocks = 0
    for match in _PEM_BLOCK.finditer(pem):
        if match.group(1) != b"CERTIFICATE":
            return f"only CERTIFICATE PEM blocks are allowed, found {json.dumps(match.group(1).decode())}"
        if b":" in match.group(2).split(b"\n", 1)[0]:
            return "no PEM block headers are permitted"
        try:
            x509.load_pem_x509_certificate(match.group(0))
        except ValueError as err:
            return f"x509: malformed certificate: {err}"
        blocks += 1
    return None if blocks else "must contain at least one CERTIFICATE PEM block"


def _csr_causes(obj: Obj, old: Obj | None) -> list[Cause]:
    """validateCertificateSigningRequest, tolerating in an update what the stored object already had."""
    spec = obj.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    causes: list[Cause] = []
    try:
        parse_request(obj)
    except ValueError as err:
        causes.append(invalid_cause("spec.request", spec.get("request"), str(err)))
    usages = spec.get("usages") or []
    old_usages = old_spec.get("usages") or []
    if not usages:
        causes.append(required_cause("spec.usages"))
    if not any(u not in VALID_USAGES for u in old_usages):
        causes.extend(
            unsupported_cause(f"spec.usages[{i}]", u, VALID_USAGES)
            for i, u in enumerate(usages)
            if u not in VALID_USAGES
        )
    if len(old_usages) == len(set(old_usages)):
        causes.extend(
            Cause(f"spec.usages[{i}]", f"Duplicate value: {json.dumps(u)}", "FieldValueDuplicate")
            for i, u in enumerate(usages)
            if u in usages[:i]
        )
    signer = spec.get("signerName") or ""
    if signer == LEGACY_UNKNOWN and old_spec.get("signerName") != LEGACY_UNKNOWN:
        causes.append(
            invalid_cause(
                "spec.signerName", signer, "the legacy signerName is not allowed via this API version"
            )
        )
    elif signer != LEGACY_UNKNOWN:
        causes.extend(_signer_name_causes("spec.signerName", signer))
    seconds = spec.get("expirationSeconds")
    if seconds is not None and seconds < 600:
        causes.append(
            invalid_cause(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    causes.extend(_conditions_causes(obj, old))
    cert = _bytes(obj.get("status") or {}, "certificate", "status.certificate")
    old_cert = _bytes((old or {}).get("status") or {}, "certificate", "status.certificate")
    arbitrary = old is not None and (cert == old_cert or _certificate_error(old_cert) is not None)
    if not arbitrary and (error := _certificate_error(cert)):
        causes.append(invalid_cause("status.certificate", "<certificate data>", error))
    return causes


def _validate(*, approval: bool = False, certificate: bool = False) -> Any:
    def validate(_ctx: SimContext, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = _csr_causes(obj, old)
        if old is None:
            return causes
        new_conditions = deep(obj, "status", "conditions") or []
        old_conditions = deep(old, "status", "conditions") or []
        for kind in (APPROVED, DENIED, FAILED):
            if len([c for c in new_conditions if c.get("type") == kind]) < len(
                [c for c in old_conditions if c.get("type") == kind]
            ):
                causes.append(
                    forbidden_cause(
                        "status.conditions", f"updates may not remove a condition of type {json.dumps(kind)}"
                    )
                )
        if not approval:
            for kind in (APPROVED, DENIED):
                new_of = [c for c in new_conditions if c.get("type") == kind]
                old_of = [c for c in old_conditions if c.get("type") == kind]
                if len(new_of) > len(old_of):
                    causes.append(
                        forbidden_cause(
                            "status.conditions", f"updates may not add a condition of type {json.dumps(kind)}"
                        )
                    )
                elif len(new_of) == len(old_of) and new_of != old_of:
                    causes.append(
                        forbidden_cause(
                            "status.conditions",
                            f"updates may not modify a condition of type {json.dumps(kind)}",
                        )
                    )
        cert, old_cert = deep(obj, "status", "certificate") or "", deep(old, "status", "certificate") or ""
        if cert != old_cert:
            if not certificate:
                causes.append(
                    forbidden_cause("status.certificate", "updates may not set certificate content")
                )
            elif old_cert:
                causes.append(
                    forbidden_cause(
                        "status.certificate", "updates may not modify existing certificate content"
                    )
                )
        return causes

    return validate


# -- admission -------------------------------------------------------------------------------------------------------
def _authorized_for_signer(ctx: SimContext, requester: Requester, verb: str, signer: str) -> bool:
    """certauthorization.IsAuthorizedForSignerName: the signer by name, or every signer of its domain."""
    for name in (signer, signer.split("/")[0] + "/*"):
        attrs = Attributes(requester.user, verb, True, api_group=GROUP, resource="signers", name=name)
        if decide(ctx, attrs).allowed:
            return True
    return False


def _admission_name(requester: Requester, obj: Obj) -> str:
    # admission.NewForbidden: the name of the request, else of the object, else its generateName
    meta = obj.get("metadata") or {}
    return requester.info.name or meta.get("name") or meta.get("generateName") or "Unknown"


def _admit_create(_ctx: SimContext, requester: Requester, obj: Obj, old: Obj | None) -> None:
    """CertificateSubjectRestriction: no system:masters client certificates through the CSR API."""
    if old is not None or deep(obj, "spec", "signerName") != KUBE_APISERVER_CLIENT:
        return
    groups = parse_request(obj).subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if any(g.value == "system:masters" for g in groups):
        raise status.forbidden_because(
            CSRS.plural,
            GROUP,
            _admission_name(requester, obj),
            f"use of {KUBE_APISERVER_CLIENT} signer with system:masters group is not allowed",
        )


def _admit_signer(verb: str, only_when_status_changes: bool) -> Any:
    """CertificateApproval (`approve`) and CertificateSigning (`sign`) on the old object's signerName."""

    def admit(ctx: SimContext, requester: Requester, obj: Obj, old: Obj | None) -> None:
        assert old is not None
        if only_when_status_changes and (obj.get("status") or {}) == (old.get("status") or {}):
            return
        signer = str(deep(old, "spec", "signerName") or "")
        if not _authorized_for_signer(ctx, requester, verb, signer):
            raise status.forbidden_because(
                CSRS.plural,
                GROUP,
                _admission_name(requester, obj),
                f"user not permitted to {verb} requests with signerName {json.dumps(signer)}",
            )

    return admit


# -- table -----------------------------------------------------------------------------------------------------------
def condition_summary(obj: Obj) -> str:
    """extractCSRStatus: Denied, Approved or Pending, then Failed and Issued."""
    kinds = {c.get("type") for c in deep(obj, "status", "conditions") or []}
    summary = DENIED if DENIED in kinds else APPROVED if APPROVED in kinds else "Pending"
    if FAILED in kinds:
        summary += ",Failed"
    if deep(obj, "status", "certificate"):
        summary += ",Issued"
    return summary


def _requested(obj: Obj) -> str:
    seconds = deep(obj, "spec", "expirationSeconds")
    return "<none>" if seconds is None else human_duration(seconds)


CSR_STRATEGY = Strategy(
    CSRS,
    name_check=lambda _name: [],  # ValidateCertificateRequestName: any name
    prepare=_prepare,
    requester=_stamp_requester,
    validate=_validate(),
    admit=_admit_create,
    columns=(
        NAME,
        AGE,
        Column("SignerName", lambda o: deep(o, "spec", "signerName") or "<none>"),
        Column("Requestor", lambda o: deep(o, "spec", "username") or ""),
        Column("RequestedDuration", _requested),
        Column("Condition", condition_summary),
    ),
    field_labels={"spec.signerName": lambda o: str(deep(o, "spec", "signerName") or "")},
    subresources={
        "approval": Subresource(_prepare_approval, _validate(approval=True), _admit_signer("approve", False)),
        "status": Subresource(_prepare_status, _validate(certificate=True), _admit_signer("sign", True)),
    },
)


def strategies() -> list[Strategy]:
    return [CSR_STRATEGY]


def approved(obj: Obj) -> bool:
    kinds = {c.get("type") for c in deep(obj, "status", "conditions") or []}
    return APPROVED in kinds and DENIED not in kinds


def failed(obj: Obj) -> bool:
    return any(
        c.get("type") == FAILED and c.get("status") == "True" for c in deep(obj, "status", "conditions") or []
    )
