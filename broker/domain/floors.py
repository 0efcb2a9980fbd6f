"""Limits the Kubernetes API sets, which every layer must respect the same way."""

# TokenRequest refuses expirationSeconds below 10 minutes (pkg/apis/authentication/validation): never clamped
TOKEN_REQUEST_MIN_SECONDS = 600
