"""Reading config.toml: one file, no network, no certificate parsing, no existence checks on the paths it names
(those belong to whoever opens them). Relative paths are resolved against the directory of the config file.
Every problem becomes a `ConfigError` whose text has one line per problem, each naming the file and the key
path (`roles[2].max_ttl`), so `token-broker config check` can print it as it is."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .fields import PROBLEMS, short
from .model import BrokerConfig


@dataclass(frozen=True)
class ConfigProblem:
    """One problem: `where` is a key path (`roles[2].max_ttl`), `line 3, column 9`, or "" for the whole file."""

    where: str
    message: str


class ConfigError(Exception):
    def __init__(self, path: Path, problems: Sequence[ConfigProblem]) -> None:
        self.path = path
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{self.path}: {p.where}: {p.message}" if p.where else f"{self.path}: {p.message}"
            for p in self.problems
        )


_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")
_TYPE_MESSAGES = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "dict_type": "expected a table",
    "mapping_type": "expected a table",
    "path_type": "expected a path (a string)",
}


def _key_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _join_key(base: str, rel: str) -> str:
    if not rel:
        return base
    if not base:
        return rel
    return f"{base}{rel}" if rel.startswith("[") else f"{base}.{rel}"


def _message(err: ErrorDetails) -> str:
    """One pydantic error in the words of config.toml."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (misspelt, or in the wrong section?)"
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]}, got {short(err['input'])}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'another value')}, got {short(err['input'])}"
    if kind == "too_short":
        count = ctx.get("min_length", 1)
        return f"must have at least {count} {'entry' if count == 1 else 'entries'}"
    return str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be", 1)


def _problems_from(exc: ValidationError) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    errors = exc.errors(include_url=False)
    item_locs = [tuple(e["loc"]) for e in errors]
    for err in errors:
        loc = tuple(err["loc"])
        # A list whose items failed is also "too short after validation": noise once the items are reported.
        if err["type"] == "too_short" and any(len(o) > len(loc) and o[: len(loc)] == loc for o in item_locs):
            continue
        key = _key_path(loc)
        if err["type"] == PROBLEMS:
            reported = (err.get("ctx") or {})["problems"]
            problems.extend(ConfigProblem(_join_key(key, rel), msg) for rel, msg in reported)
        else:
            problems.append(ConfigProblem(key, _message(err)))
    return problems


def parse_config(text: str, path: Path) -> BrokerConfig:
    """Validate TOML text as if read from `path` (used for messages and to resolve relative paths)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.match(str(exc))
        if m:
            where = f"line {m.group(2)}, column {m.group(3)}"
            raise ConfigError(path, [ConfigProblem(where, f"invalid TOML: {m.group(1)}")]) from None
        raise ConfigError(path, [ConfigProblem("", f"invalid TOML: {exc}")]) from None
    try:
        return BrokerConfig.model_validate(data, context={"base_dir": path.absolute().parent})
    except ValidationError as exc:
        raise ConfigError(path, _problems_from(exc)) from None


def load_config(path: Path | str) -> BrokerConfig:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, [ConfigProblem("", "config file not found")]) from None
    except IsADirectoryError:
        raise ConfigError(path, [ConfigProblem("", "is a directory, not a config file")]) from None
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read config file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            path, [ConfigProblem("", f"not UTF-8 text (byte {exc.start}); TOML files are UTF-8")]
        ) from None
    return parse_config(text, path)
