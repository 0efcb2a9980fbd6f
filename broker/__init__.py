"""kube-token-broker: short-lived, verified, audited Kubernetes service-account tokens."""

__version__ = "0.1.0"
