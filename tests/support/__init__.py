"""What many test folders share: one pki, one served HTTP edge, one kubectl runner, stores, retry, an in-memory Kubernetes API, signing keys."""
