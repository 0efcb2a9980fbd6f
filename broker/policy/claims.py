"""Bound claims (like Vault's JWT auth `bound_claims`): a grant with `claims` matches only OIDC callers whose
verified token carries every named claim with a value equal to one of the grant's values, where `*` matches any
run of characters and `?` one character (everything else is literal, also `/`). A list claim matches when any
element does; a boolean or number is compared in its JSON form (true → "true"); an object or null never matches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _claim_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern), re.S
    )


def _claim_texts(value: Any) -> list[str] | None:
    """A claim value in the form bound values are compared with; None when it cannot match anything."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool | int | float):
        return [json.dumps(value)]
    if isinstance(value, list):
        texts: list[str] = []
        for item in value:
            if isinstance(item, str | bool | int | float):
                texts.extend(_claim_texts(item) or ())
        return texts
    return None


def _show_value(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


@dataclass(frozen=True)
class ClaimRule:
    claim: str
    patterns: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]

    @classmethod
    def compile(cls, claim: str, patterns: tuple[str, ...]) -> ClaimRule:
        return cls(claim, patterns, tuple(_claim_regex(p) for p in patterns))

    def problem(self, claims: Mapping[str, Any]) -> str | None:
        """Why the claims fail this rule, or None when they pass."""
        wanted = repr(self.patterns[0]) if len(self.patterns) == 1 else f"any of {list(self.patterns)!r}"
        if self.claim not in claims:
            return f"claim {self.claim} is missing (wanted {wanted})"
        value = claims[self.claim]
        texts = _claim_texts(value)
        if texts is None:
            return f"claim {self.claim} {_show_value(value)} is not a string, number, boolean or list of them"
        if any(r.fullmatch(t) for r in self.regexes for t in texts):
            return None
        return f"claim {self.claim} {_show_value(value)} does not match {wanted}"
