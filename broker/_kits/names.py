"""Kubernetes name rules and the namespace globs roles and grants use. Pure functions, shared by config and policy.

Rules copied from apimachinery/pkg/util/validation (IsDNS1123Label, IsDNS1123Subdomain, IsQualifiedName,
IsValidLabelValue). Namespaces are DNS-1123 labels; service accounts are DNS-1123 subdomains
(ValidateServiceAccountName = NameIsDNSSubdomain).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_GLOB_CHARS = re.compile(r"[-a-z0-9*?]+")
GLOB_META = frozenset("*?")


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def is_qualified_name(value: str) -> bool:
    """A label or annotation key: `[prefix/]name`, prefix a DNS-1123 subdomain, name at most 63 characters."""
    prefix, slash, name = value.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        return False
    return 0 < len(name) <= 63 and _QUALIFIED_NAME_PART.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and _QUALIFIED_NAME_PART.fullmatch(value) is not None)


def is_glob(pattern: str) -> bool:
    return any(ch in GLOB_META for ch in pattern)


def namespace_pattern_problem(pattern: str) -> str | None:
    """Why `pattern` can never be a useful namespace glob, or None when it is fine.

    `*` matches any run of characters (also none) and `?` exactly one; everything else is literal.
    """
    if not pattern:
        return "namespace pattern must not be empty"
    if _GLOB_CHARS.fullmatch(pattern) is None:
        return f"namespace pattern {pattern!r} may contain only a-z, 0-9, '-', '*' and '?'"
    # Filling every wildcard with one letter gives a representative name; if that is not a DNS-1123 label the
    # literal part already rules every namespace out (e.g. "-ci*" or "ci-*-").
    if len(pattern.replace("*", "")) > 63 or not _DNS1123_LABEL.fullmatch(re.sub(r"[*?]", "a", pattern)):
        return f"namespace pattern {pattern!r} cannot match a valid namespace name (a DNS-1123 label)"
    return None


def _glob_regex(pattern: str) -> str:
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)


@dataclass(frozen=True)
class NamespaceMatcher:
    """Matches a namespace against globs: "*" and literals without regex, other globs by one combined regex
    compiled on first use (a policy with thousands of grants must load fast)."""

    patterns: tuple[str, ...]

    @cached_property
    def _literals(self) -> frozenset[str]:
        return frozenset(p for p in self.patterns if not is_glob(p))

    @cached_property
    def _regex(self) -> re.Pattern[str] | None:
        globs = [p for p in self.patterns if is_glob(p)]
        return re.compile("|".join(f"(?:{_glob_regex(g)})" for g in globs)) if globs else None

    @property
    def matches_everything(self) -> bool:
        return "*" in self.patterns

    def matches(self, namespace: str) -> bool:
        if self.matches_everything or namespace in self._literals:
            return True
        return self._regex is not None and self._regex.fullmatch(namespace) is not None

    def only_literal(self) -> str | None:
        """The namespace when the patterns name exactly one and no glob, else None."""
        if len(self.patterns) == 1 and not is_glob(self.patterns[0]):
            return self.patterns[0]
        return None
