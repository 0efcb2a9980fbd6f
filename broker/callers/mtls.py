"""Client certificates, read the way kube-apiserver reads them: Subject CN = user, each Subject O = a group."""

from __future__ import annotations

from cryptography import x509

from broker._kits.pki import identity_of
from broker.callers.base import CallerRequest
from broker.domain.errors import ErrorKind, unauthenticated
from broker.domain.identity import Caller


class MtlsAuthenticator:
    """Trusts the TLS layer for chain verification (against the client CA) and only reads the subject.

    Mirrors k8s.io/apiserver/pkg/authentication/request/x509 CommonNameUserConversion.
    """

    method = "mtls"

    async def authenticate(self, request: CallerRequest) -> Caller | None:
        if request.peer_cert_der is None:
            return None
        try:
            cert = x509.load_der_x509_certificate(request.peer_cert_der)
        except ValueError as exc:
            raise unauthenticated(
                ErrorKind.CREDENTIAL_MALFORMED,
                "client certificate could not be read",
                reason=f"bad DER: {exc}",
            ) from exc
        user, groups = identity_of(cert)
        if not user:
            # kube-apiserver skips such a certificate and falls through to other authenticators; a broker
            # caller who bothered to present one meant it, so refusing is clearer than a confusing 401 later.
            raise unauthenticated(
                ErrorKind.CREDENTIAL_MALFORMED,
                "client certificate has no common name (CN) to use as the user name",
                reason=f"client certificate without CN, subject {cert.subject.rfc4514_string()}",
            )
        return Caller(user=user, groups=tuple(groups), method=self.method)
