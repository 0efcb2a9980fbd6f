"""Label selectors with the syntax and meaning of apimachinery/pkg/labels (selector.go), minus `<`/`>`.

Supported: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not exist), joined
by commas (AND). As in Kubernetes, `!=` and `notin` also match objects that lack the key, and an empty
selector matches everything. Parsing happens once, at config load; matching is a pure function.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .names import is_label_value, is_qualified_name

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]

# Same token boundaries as the apimachinery lexer: these characters always end an identifier.
_TOKEN = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,|<|>)|([^\s,()=!<>]+))")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!":
            return self.key not in labels
        if self.operator in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        # "!=" / "notin": a missing key matches (labels.Requirement.Matches, selection.NotEquals/NotIn).
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern accepts every non-space character
            raise ValueError(f"label selector: unexpected text at position {pos}")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.pos += 1
        return tok

    def key(self) -> str:
        tok = self.take()
        if tok is None or tok in {"==", "!=", "=", "!", "(", ")", ",", "<", ">"}:
            raise ValueError(f"label selector: expected a label key, found {tok or 'end of input'!r}")
        if not is_qualified_name(tok):
            raise ValueError(f"label selector: invalid label key {tok!r}")
        return tok

    def value(self) -> str:
        # `k=` (followed by a comma or the end) selects the empty value, as apimachinery's parseExactValue does.
        tok = self.peek()
        if tok is None or tok in {",", ")"}:
            return ""
        self.pos += 1
        if tok in {"==", "!=", "=", "!", "(", "<", ">"} or not is_label_value(tok):
            raise ValueError(f"label selector: invalid label value {tok!r}")
        return tok

    def value_set(self) -> frozenset[str]:
        if self.take() != "(":
            raise ValueError("label selector: expected '(' after in/notin")
        values: set[str] = set()
        while True:
            values.add(self.value())
            tok = self.take()
            if tok == ")":
                break
            if tok != ",":
                raise ValueError("label selector: expected ',' or ')' in a value list")
        if values == {""}:
            raise ValueError("label selector: in/notin need at least one value")
        return frozenset(values)

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return Requirement(self.key(), "!")
        key = self.key()
        op = self.peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        self.take()
        if op in ("=", "=="):
            return Requirement(key, "=", frozenset([self.value()]))
        if op == "!=":
            return Requirement(key, "!=", frozenset([self.value()]))
        if op in ("in", "notin"):
            return Requirement(key, "in" if op == "in" else "notin", self.value_set())
        if op in ("<", ">"):
            raise ValueError("label selector: '<' and '>' are not supported")
        raise ValueError(f"label selector: expected an operator after {key!r}, found {op!r}")

    def parse(self) -> tuple[Requirement, ...]:
        requirements = [self.requirement()]
        while (tok := self.take()) is not None:
            if tok != ",":
                raise ValueError(f"label selector: expected ',' between requirements, found {tok!r}")
            requirements.append(self.requirement())
        return tuple(requirements)


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a selector; raises ValueError with a message fit for a config error."""
    if not text.strip():
        return LabelSelector(text, ())
    return LabelSelector(text, _Parser(text).parse())
