# syntax=docker/dockerfile:1
# kube-token-broker: a slim, non-root image whose root filesystem can be mounted read-only.
#
#   docker build -t kube-token-broker:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v "$PWD/etc:/etc/token-broker:ro" -p 8443:8443 -p 9090:9090 \
#       kube-token-broker:0.1.0
#
# Pin the base image by digest in your own builds: --build-arg PYTHON_IMAGE=python:3.13-slim-trixie@sha256:…
ARG PYTHON_IMAGE=python:3.13-slim-trixie

# --- builder: a virtualenv with the broker and its pinned dependencies ------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/token-broker

# Dependencies first (their layer survives source edits), every one pinned by constraints.txt. All of them ship
# binary wheels, so no compiler is needed even here.
COPY constraints.txt ./
RUN /opt/token-broker/bin/pip install --no-cache-dir --only-binary=:all: -r constraints.txt

COPY pyproject.toml README.md ./
COPY broker ./broker
# --no-deps: everything it needs is already there, at the pinned versions; pip compiles the .pyc files now,
# because the read-only root filesystem will not let Python write them at run time.
RUN /opt/token-broker/bin/pip install --no-cache-dir --no-deps -c constraints.txt . \
    && /opt/token-broker/bin/pip check

# --- final: the same base, the virtualenv, nothing else ---------------------------------------------------------
FROM ${PYTHON_IMAGE}

# an ARG from before FROM is visible in the stage only when declared again
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kube-token-broker" \
      org.opencontainers.image.description="Short-lived, verified, audited Kubernetes service-account tokens for callers outside the cluster" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# HOME=/tmp: uid 65532 has no passwd entry and no home; /tmp is the one writable place (an emptyDir in the chart).
ENV PATH=/opt/token-broker/bin:${PATH} \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=builder /opt/token-broker /opt/token-broker

# A numeric user so Kubernetes can verify runAsNonRoot without a passwd lookup. The files stay root-owned:
# the broker reads its code and never writes it.
USER 65532:65532
WORKDIR /tmp

# 8443: the API (TLS); 9090: /metrics (plain HTTP). The chart's config.toml listens on these.
EXPOSE 8443 9090

# No HEALTHCHECK: Kubernetes ignores it (the chart's liveness /healthz and readiness /readyz probes are the real
# checks), and the slim image has no HTTPS client that could present the broker's CA.
HEALTHCHECK NONE

ENTRYPOINT ["token-broker"]
CMD ["serve", "--config", "/etc/token-broker/config.toml"]
