"""Every Prometheus metric the broker exposes, declared once, with small typed helpers to record them.

Names start with `token_broker_`. Label values come only from bounded sets: the router's route templates,
config names (roles, clusters, OIDC issuers), the namespace *patterns* of a role, and the fixed vocabularies
of broker.metric_labels (a value outside a vocabulary is recorded as "other", so a caller-supplied string can
never mint a new series).

The issuer, HTTP layer, Kubernetes client, audit store and janitor call the module-level helpers, which record
on the default registry (the one `/metrics` serves). `BrokerMetrics(CollectorRegistry())` gives a private set
for tests.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Final, get_args

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import disable_created_metrics as _disable_created_metrics

from broker import __version__
from broker import metric_labels as vocab

# The classic text format turns each counter's `_created` timestamp into a separate gauge series that nobody
# graphs: it would double the series count for nothing.
_disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX: Final = "token_broker_"

# 1 ms … 10 s: a cached issuance takes about a millisecond, a TokenRequest against a slow API server seconds.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

UNMATCHED_ROUTE: Final = "unmatched"
# bound of a per-call lookup cache; the label sets behind it are small and fixed, the keys nearly so
_CHILD_CACHE_SIZE: Final = 1024


class BrokerMetrics:
    """The broker's metrics on one registry. Methods are the only way they are recorded."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        r = registry
        p = PREFIX
        self.tokens_issued = Counter(
            p + "tokens_issued_total",
            "Tokens handed to callers.",
            # not "namespace": Prometheus Operator adds the scraped pod's namespace as `namespace` and would
            # rename this one to exported_namespace
            ["role", "token_namespace", "mode"],
            registry=r,
        )
        self.tokens_denied = Counter(
            p + "tokens_denied_total",
            "Token requests refused by policy or validation.",
            ["reason_kind"],
            registry=r,
        )
        self.tokens_failed = Counter(
            p + "tokens_failed_total",
            "Allowed token requests that produced no token.",
            ["role", "kind"],
            registry=r,
        )
        self.tokens_revoked = Counter(
            p + "tokens_revoked_total", "Tokens revoked before their expiry.", ["role"], registry=r
        )
        self.issuance_duration = Histogram(
            p + "issuance_duration_seconds",
            "Time from an authenticated token request to its answer.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            p + "http_requests_total",
            "HTTP requests on the API listener.",
            ["route", "method", "status_class"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            p + "http_request_duration_seconds",
            "HTTP request latency on the API listener.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.kube_requests = Counter(
            p + "kube_requests_total",
            "Requests to Kubernetes API servers; code is the HTTP status or 'error' when none came back.",
            ["verb", "resource", "code"],
            registry=r,
        )
        self.kube_request_duration = Histogram(
            p + "kube_request_duration_seconds",
            "Kubernetes API request latency.",
            ["verb", "resource"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_write_duration = Histogram(
            p + "audit_write_duration_seconds",
            "Audit store write latency (commit included).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.audit_write_failures = Counter(
            p + "audit_write_failures_total", "Audit store writes that failed.", registry=r
        )
        self.jwks_refresh = Counter(
            p + "jwks_refresh_total",
            "JWKS fetches by source (cluster: an API server's keys, oidc: a trusted issuer's) and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self.active_tokens = Gauge(
            p + "active_tokens", "Issued tokens not yet expired nor revoked.", ["role"], registry=r
        )
        self.auth_failures = Counter(
            p + "auth_failures_total", "Failed caller authentications.", ["method", "reason"], registry=r
        )
        self.rate_limited = Counter(
            p + "rate_limited_total", "Requests refused by the per-caller rate limit (429).", registry=r
        )
        self.janitor_runs = Counter(
            p + "janitor_runs_total", "Janitor sweeps by outcome.", ["outcome"], registry=r
        )
        self.janitor_deletions = Counter(
            p + "janitor_deletions_total",
            "Objects the janitor deleted (expired bound Secrets, ephemeral service accounts).",
            ["resource"],
            registry=r,
        )
        self.janitor_leader = Gauge(
            p + "janitor_leader", "1 while this replica holds the janitor Lease, else 0.", registry=r
        )
        self.config_reloads = Counter(
            p + "config_reloads_total", "Config reloads (SIGHUP) by outcome.", ["outcome"], registry=r
        )
        self.tls_certificate_expiry = Gauge(
            p + "tls_certificate_expiry_timestamp_seconds",
            "notAfter of the broker's serving certificate and of its client CA, as a Unix time.",
            ["certificate"],
            registry=r,
        )
        # sink labels are the names of [[audit.sinks]] in the config
        self.audit_sink_lag_events = Gauge(
            p + "audit_sink_lag_events",
            "Audit events committed but not yet acknowledged by the sink (every replica reports the store's view).",
            ["sink"],
            registry=r,
        )
        self.audit_sink_lag_seconds = Gauge(
            p + "audit_sink_lag_seconds",
            "Age of the oldest audit event the sink has not acknowledged; 0 when it has them all.",
            ["sink"],
            registry=r,
        )
        self.audit_sink_delivered = Counter(
            p + "audit_sink_delivered_total",
            "Audit events the sink acknowledged (the cursor moved past them).",
            ["sink"],
            registry=r,
        )
        self.audit_sink_failures = Counter(
            p + "audit_sink_failures_total",
            "Failed delivery attempts to an audit sink, by kind (each retry counts).",
            ["sink", "kind"],
            registry=r,
        )
        self.build = Info(p + "build", "Version of the broker and of Python.", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})
        self._roles_seen: set[str] = set()
        # kube_request runs on every API server round trip: its series are looked up once, not per call
        # (.labels() validates and locks each time — most of the cost of recording)
        self._kube_children: dict[tuple[str, str, int | None], tuple[Counter, Histogram]] = {}
        # Series of small fixed vocabularies start at 0: rate() over a series born at its first increment misses
        # that increment, and ratio alerts need the denominator's labels to exist.
        for outcome in get_args(vocab.Outcome):
            self.issuance_duration.labels(outcome)
        for kind in vocab.DENY_KINDS:
            self.tokens_denied.labels(kind)
        for run_outcome in vocab.RUN_OUTCOMES:
            self.janitor_runs.labels(run_outcome)
            self.config_reloads.labels(run_outcome)

    # -- issuance ---------------------------------------------------------------------------------------------

    def token_issued(
        self, role: str, namespace: str, namespace_patterns: Sequence[str], mode: vocab.Mode, seconds: float
    ) -> None:
        """A token left the broker. `namespace_patterns` are the role's namespaces (see
        metric_labels.namespace_label)."""
        self.tokens_issued.labels(
            role, vocab.namespace_label(namespace, namespace_patterns), vocab.one_of(mode, vocab.MODES)
        ).inc()
        self.issuance_duration.labels("issued").observe(seconds)

    def token_denied(self, reason_kind: vocab.DenyKind, seconds: float) -> None:
        self.tokens_denied.labels(vocab.one_of(reason_kind, vocab.DENY_KINDS)).inc()
        self.issuance_duration.labels("denied").observe(seconds)

    def token_failed(self, role: str, kind: vocab.FailKind, seconds: float) -> None:
        self.tokens_failed.labels(role, vocab.one_of(kind, vocab.FAIL_KINDS)).inc()
        self.issuance_duration.labels("failed").observe(seconds)

    def token_revoked(self, role: str) -> None:
        self.tokens_revoked.labels(role).inc()

    def set_active_tokens(self, counts: Mapping[str, int]) -> None:
        """Active tokens per role, as the audit store counts them. Roles missing from `counts` that were
        reported before drop to 0 (their last token expired) rather than keep a stale value."""
        for role in self._roles_seen - counts.keys():
            self.active_tokens.labels(role).set(0)
        for role, count in counts.items():
            self.active_tokens.labels(role).set(count)
        self._roles_seen |= counts.keys()

    def declare_roles(self, roles: Iterable[str]) -> None:
        """Start per-role series at 0 so rate() and absent-series alerts work before the first event."""
        for role in roles:
            self.tokens_revoked.labels(role)
            if role not in self._roles_seen:
                self.active_tokens.labels(role).set(0)
                self._roles_seen.add(role)

    # -- HTTP and Kubernetes ----------------------------------------------------------------------------------

    def http_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """`route` is the router's template ("/v1/tokens/{token_id}"), None when no route matched."""
        label = route or UNMATCHED_ROUTE
        self.http_requests.labels(
            label, vocab.one_of(method.upper(), vocab.HTTP_METHODS), vocab.status_class(status)
        ).inc()
        self.http_request_duration.labels(label).observe(seconds)

    def kube_request(
        self,
        verb: vocab.KubeVerb | vocab.Other,
        resource: vocab.KubeResource | vocab.Other,
        code: int | None,
        seconds: float,
    ) -> None:
        """One API server round trip; `code` None when no HTTP response came back (timeout, reset)."""
        key = (verb, resource, code)
        children = self._kube_children.get(key)
        if children is None:
            verb_label = vocab.one_of(verb, vocab.KUBE_VERBS)
            resource_label = vocab.one_of(resource, vocab.KUBE_RESOURCES)
            code_label = str(code) if code is not None and 100 <= code <= 599 else "error"
            children = (
                self.kube_requests.labels(verb_label, resource_label, code_label),
                self.kube_request_duration.labels(verb_label, resource_label),
            )
            if len(self._kube_children) < _CHILD_CACHE_SIZE:
                self._kube_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    # -- audit store ------------------------------------------------------------------------------------------

    def audit_write(self, seconds: float) -> None:
        self.audit_write_duration.observe(seconds)

    def audit_write_failed(self) -> None:
        self.audit_write_failures.inc()

    @contextmanager
    def time_audit_write(self) -> Iterator[None]:
        """`with time_audit_write(): await store.write(...)` — observes the latency, counts an exception as a
        failure and lets it propagate."""
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.audit_write_failures.inc()
            raise
        finally:
            self.audit_write_duration.observe(time.perf_counter() - start)

    # -- callers ----------------------------------------------------------------------------------------------

    def auth_failure(self, method: vocab.AuthMethod, reason: vocab.AuthReason) -> None:
        self.auth_failures.labels(
            vocab.one_of(method, vocab.AUTH_METHODS), vocab.one_of(reason, vocab.AUTH_REASONS)
        ).inc()

    def rate_limited_request(self) -> None:
        self.rate_limited.inc()

    def jwks_refreshed(self, source: vocab.JwksSource, outcome: vocab.JwksOutcome) -> None:
        """`source` is the kind of key set, never an issuer URL (an OIDC issuer is named by tokens)."""
        self.jwks_refresh.labels(
            vocab.one_of(source, vocab.JWKS_SOURCES), vocab.one_of(outcome, vocab.JWKS_OUTCOMES)
        ).inc()

    # -- janitor ----------------------------------------------------------------------------------------------

    def janitor_run(self, outcome: vocab.RunOutcome) -> None:
        self.janitor_runs.labels(vocab.one_of(outcome, vocab.RUN_OUTCOMES)).inc()

    def janitor_deleted(self, resource: vocab.JanitorResource, count: int = 1) -> None:
        self.janitor_deletions.labels(vocab.one_of(resource, vocab.JANITOR_RESOURCES)).inc(count)

    def set_janitor_leader(self, leader: bool) -> None:
        self.janitor_leader.set(1 if leader else 0)

    # -- audit sinks ------------------------------------------------------------------------------------------

    def declare_sinks(self, sinks: Iterable[str]) -> None:
        """Start every sink's series at 0, so the lag alert and rate() work from the first scrape."""
        for sink in sinks:
            self.audit_sink_lag_events.labels(sink).set(0)
            self.audit_sink_lag_seconds.labels(sink).set(0)
            self.audit_sink_delivered.labels(sink)
            for kind in vocab.SINK_FAILURES:
                self.audit_sink_failures.labels(sink, kind)

    def set_sink_lag(self, sink: str, events: int, seconds: float) -> None:
        self.audit_sink_lag_events.labels(sink).set(events)
        self.audit_sink_lag_seconds.labels(sink).set(seconds)

    def sink_delivered(self, sink: str, count: int) -> None:
        self.audit_sink_delivered.labels(sink).inc(count)

    def sink_failure(self, sink: str, kind: vocab.SinkFailureKind | vocab.Other) -> None:
        self.audit_sink_failures.labels(sink, vocab.one_of(kind, vocab.SINK_FAILURES)).inc()

    # -- process ----------------------------------------------------------------------------------------------

    def config_reload(self, outcome: vocab.RunOutcome) -> None:
        self.config_reloads.labels(vocab.one_of(outcome, vocab.RUN_OUTCOMES)).inc()

    def set_tls_certificate_expiry(self, certificate: vocab.CertificateKind, not_after: datetime) -> None:
        """`not_after` must be timezone-aware (cryptography's `not_valid_after_utc`)."""
        self.tls_certificate_expiry.labels(vocab.one_of(certificate, vocab.CERTIFICATES)).set(
            not_after.timestamp()
        )


# The default registry: what the metrics listener serves.
DEFAULT: Final = BrokerMetrics()

token_issued = DEFAULT.token_issued
token_denied = DEFAULT.token_denied
token_failed = DEFAULT.token_failed
token_revoked = DEFAULT.token_revoked
set_active_tokens = DEFAULT.set_active_tokens
declare_roles = DEFAULT.declare_roles
http_request = DEFAULT.http_request
kube_request = DEFAULT.kube_request
audit_write = DEFAULT.audit_write
audit_write_failed = DEFAULT.audit_write_failed
time_audit_write = DEFAULT.time_audit_write
auth_failure = DEFAULT.auth_failure
rate_limited_request = DEFAULT.rate_limited_request
jwks_refreshed = DEFAULT.jwks_refreshed
janitor_run = DEFAULT.janitor_run
janitor_deleted = DEFAULT.janitor_deleted
set_janitor_leader = DEFAULT.set_janitor_leader
config_reload = DEFAULT.config_reload
set_tls_certificate_expiry = DEFAULT.set_tls_certificate_expiry
declare_sinks = DEFAULT.declare_sinks
set_sink_lag = DEFAULT.set_sink_lag
sink_delivered = DEFAULT.sink_delivered
sink_failure = DEFAULT.sink_failure


def metric_names(metrics: BrokerMetrics = DEFAULT) -> frozenset[str]:
    """Every metric family name this module declares, as Prometheus sees it (for dashboard/alert checks)."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram | Info):
            for family in value.describe():
                suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
                names.add(family.name + suffix)
    return frozenset(names)
