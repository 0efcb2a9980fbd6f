"""kube-controller-manager's CSR signing controller for `kubernetes.io/kube-apiserver-client`
(pkg/controller/certificates/signer, authority.PermissiveSigningPolicy), signing with the cluster CA.

An approved, not failed request without a certificate is signed asynchronously (`SimOptions.csr_signing_delay`
after the approval): usages other than digital signature, key encipherment and client auth, or no client auth,
add a `Failed` condition (reason SignerValidationFailure) instead. The certificate is what Go's
x509.CreateCertificate makes of the request: the subject re-encoded from its parsed form (C, ST, L, street,
postalCode, O, OU, CN, serialNumber, each type one RDN, PrintableString where it fits), the request's DNS/email/IP/URI
SANs, key usage and extended key usage from spec.usages, CA:FALSE, the CA's key id; valid from 5 minutes ago for
the requested duration (capped by `SimOptions.cluster_signing_duration`, at least 10 minutes), less the 5 minutes
for a duration of 8 hours or more, never past the CA's own notAfter; a random 128-bit serial.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .certificates_v1 import (
    CSRS,
    FAILED,
    KUBE_APISERVER_CLIENT,
    approved,
    failed,
    now_rfc3339,
    parse_request,
    populate_condition_timestamps,
)
from .context import SimContext
from .resources import deep
from .state import EventType, Obj, ResourceType
from .status import ApiError

log = logging.getLogger(__name__)

BACKDATE = timedelta(minutes=5)
SHORT = timedelta(hours=8)
MIN_DURATION = timedelta(minutes=10)
CLIENT_USAGES = {"digital signature", "key encipherment", "client auth"}
# pkix.Name.ToRDNSequence: the attribute types Go keeps, in the order it writes them
_SUBJECT_ORDER = (
    NameOID.COUNTRY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.LOCALITY_NAME,
    NameOID.STREET_ADDRESS,
    NameOID.POSTAL_CODE,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.COMMON_NAME,
    NameOID.SERIAL_NUMBER,
)
_SINGLE_VALUED = (NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER)
_PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_KEY_USAGES = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
# in the order of Go's x509.ExtKeyUsage constants, which is how the signer sorts them
_EXT_KEY_USAGES = {
    "any": (0, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE),
    "server auth": (1, ExtendedKeyUsageOID.SERVER_AUTH),
    "client auth": (2, ExtendedKeyUsageOID.CLIENT_AUTH),
    "code signing": (3, ExtendedKeyUsageOID.CODE_SIGNING),
    "email protection": (4, ExtendedKeyUsageOID.EMAIL_PROTECTION),
    "s/mime": (4, ExtendedKeyUsageOID.EMAIL_PROTECTION),
    "ipsec end system": (5, x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5")),
    "ipsec tunnel": (6, x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6")),
    "ipsec user": (7, x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7")),
    "timestamping": (8, ExtendedKeyUsageOID.TIME_STAMPING),
    "ocsp signing": (9, ExtendedKeyUsageOID.OCSP_SIGNING),
    "microsoft sgc": (10, x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3")),
    "netscape sgc": (11, x509.ObjectIdentifier("2.16.840.1.113730.4.1")),
}


def usage_error(usages: list[str]) -> str | None:
    """validAPIServerClientUsages."""
    for usage in usages:
        if usage not in CLIENT_USAGES:
            return f"invalid usage for client certificate: {usage}"
    if "client auth" not in usages:
        return "missing required usage for client certificate: client auth"
    return None


def certificate_duration(expiration_seconds: int | None, maximum: timedelta) -> timedelta:
    """signer.duration: the requested duration, capped by --cluster-signing-duration, at least 10 minutes."""
    if expiration_seconds is None:
        return maximum
    return max(MIN_DURATION, min(timedelta(seconds=expiration_seconds), maximum))


def go_subject(subject: x509.Name) -> x509.Name:
    """What x509.CreateCertificate writes for a template whose Subject is a parsed pkix.Name."""
    values: dict[x509.ObjectIdentifier, list[str]] = {oid: [] for oid in _SUBJECT_ORDER}
    for attribute in subject:
        if attribute.oid in values and isinstance(attribute.value, str):
            if attribute.oid in _SINGLE_VALUED:
                values[attribute.oid] = [attribute.value]  # the last one wins
            else:
                values[attribute.oid].append(attribute.value)
    rdns = [
        x509.RelativeDistinguishedName([_attribute(oid, v) for v in values[oid]])
        for oid in _SUBJECT_ORDER
        if values[oid]
    ]
    return x509.Name(rdns)


def _attribute(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute[str]:
    # encoding/asn1: a PrintableString when every character allows it, else a UTF8String
    kind = _ASN1Type.PrintableString if set(value) <= _PRINTABLE else _ASN1Type.UTF8String
    return x509.NameAttribute(oid, value, _type=kind, _validate=False)


def _key_usage(usages: list[str]) -> x509.KeyUsage | None:
    bits = {_KEY_USAGES[u] for u in usages if u in _KEY_USAGES}
    if not bits:
        return None
    flags = {name: name in bits for name in set(_KEY_USAGES.values())}
    # cryptography refuses encipher/decipher only without key agreement, which Go would write; the client
    # signer never gets here with them (usage_error refuses both)
    if not flags["key_agreement"]:
        flags["encipher_only"] = flags["decipher_only"] = False
    return x509.KeyUsage(**flags)


def _sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    # marshalSANs: DNS names, then emails, IP addresses, URIs; other kinds of names are not copied
    return [
        n
        for kind in (x509.DNSName, x509.RFC822Name, x509.IPAddress, x509.UniformResourceIdentifier)
        for n in names
        if isinstance(n, kind)
    ]


def sign(ctx: SimContext, csr_obj: Obj, now: datetime | None = None) -> bytes:
    """The PEM certificate for an approved request (authority.CertificateAuthority.Sign)."""
    csr = parse_request(csr_obj)
    ca = ctx.ca
    usages = list(deep(csr_obj, "spec", "usages") or [])
    maximum = timedelta(seconds=ctx.options.cluster_signing_duration)
    ttl = certificate_duration(deep(csr_obj, "spec", "expirationSeconds"), maximum)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    not_after = now + ttl if ttl < SHORT else now + ttl - BACKDATE
    ca_not_after = ca.cert.not_valid_after_utc
    if not_after >= ca_not_after:
        not_after = ca_not_after
    if now >= ca_not_after:
        raise ValueError(f"refusing to sign a certificate that expired in the past: NotAfter={ca_not_after}")
    subject = go_subject(csr.subject)
    builder = (
        x509.CertificateBuilder()
        .serial_number(secrets.randbelow((1 << 128) - 1) + 1)
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(csr.public_key())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
    )
    if (key_usage := _key_usage(usages)) is not None:
        builder = builder.add_extension(key_usage, critical=True)
    ext_usages = sorted({_EXT_KEY_USAGES[u] for u in usages if u in _EXT_KEY_USAGES}, key=lambda e: e[0])
    if ext_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage([oid for _, oid in ext_usages]), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    try:
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    if sans := _sans(csr):
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=len(subject) == 0)
    cert = builder.sign(ca.key, _hash_for(ca.key))
    return cert.public_bytes(serialization.Encoding.PEM)


def _hash_for(key: object) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    # x509's signingParamsForKey: SHA-256, but SHA-384/512 for ECDSA keys on P-384/P-521
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size == 384:
            return hashes.SHA384()
        if key.curve.key_size == 521:
            return hashes.SHA512()
    return hashes.SHA256()


def needs_signing(obj: Obj) -> bool:
    return (
        deep(obj, "spec", "signerName") == KUBE_APISERVER_CLIENT
        and approved(obj)
        and not failed(obj)
        and not deep(obj, "status", "certificate")
    )


class CSRSigner:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._stopped = False

    def on_event(self, event: EventType, rtype: ResourceType, obj: Obj) -> None:
        if self._stopped or rtype.key != CSRS.key or event == "DELETED" or not needs_signing(obj):
            return
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        if name in self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.sync(name, uid)  # a store driven directly, outside an event loop
            return
        self._pending[name] = loop.call_later(self._ctx.options.csr_signing_delay, self._run, name, uid)

    def _run(self, name: str, uid: str) -> None:
        self._pending.pop(name, None)
        if not self._stopped:
            self.sync(name, uid)

    def sync(self, name: str, uid: str) -> None:
        """signer.handle: a Failed condition for usages the signer refuses, else the certificate."""
        store = self._ctx.store
        csr = store.try_get(CSRS, None, name)
        if csr is None or csr["metadata"]["uid"] != uid or not needs_signing(csr):
            return
        old = store.get(CSRS, None, name)
        refused = usage_error(list(deep(csr, "spec", "usages") or []))
        try:
            if refused is not None:
                conditions = csr["status"].setdefault("conditions", [])
                conditions.append(
                    {
                        "type": FAILED,
                        "status": "True",
                        "reason": "SignerValidationFailure",
                        "message": refused,
                        "lastUpdateTime": now_rfc3339(),
                    }
                )
                populate_condition_timestamps(csr, old)
            else:
                csr["status"]["certificate"] = base64.b64encode(sign(self._ctx, csr)).decode()
            store.update(CSRS, None, csr)
        except (
            ApiError,
            ValueError,
        ) as err:  # changed meanwhile, or the CA cannot sign: the next event retries
            log.info("csr signer: %s: %s", name, err)

    def stop(self) -> None:
        self._stopped = True
        self._ctx.store.remove_listener(self.on_event)
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()


def install(ctx: SimContext) -> CSRSigner:
    signer = CSRSigner(ctx)
    ctx.store.add_listener(signer.on_event)
    return signer
