"""Field validation with the messages apimachinery/pkg/util/validation and api/validation produce.

A field error renders as `<path>: <body>`, the body being `Invalid value: "x": <detail>` or `Required value`,
exactly as field.Error.Error() does; `status.invalid` joins them into the 422 Status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from .status import Cause, invalid

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_LABEL = re.compile("^" + _DNS1123_LABEL_FMT + "$")
_DNS1123_SUBDOMAIN = re.compile("^" + _DNS1123_SUBDOMAIN_FMT + "$")
_LABEL_ERR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME = re.compile("^" + _QNAME_FMT + "$")
_QNAME_ERR = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
_LABEL_VALUE_FMT = "(" + _QNAME_FMT + ")?"
_LABEL_VALUE = re.compile("^" + _LABEL_VALUE_FMT + "$")
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY = re.compile("^" + _CONFIG_KEY_FMT + "$")
_CONFIG_KEY_ERR = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    # validation.RegexError
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def go_quote(value: Any) -> str:
    """How field.Error prints a bad value: strings quoted like Go's %q, numbers and bools bare, anything else as
    its JSON (apimachinery 0.34's ErrorBody)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def go_syntax(values: list[str]) -> str:
    """fmt's %#v of a []string: []string{"a", "b"}."""
    return "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"


def invalid_cause(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, f"Invalid value: {go_quote(value)}: {detail}", "FieldValueInvalid")


def required_cause(path: str, detail: str = "") -> Cause:
    return Cause(path, "Required value" + (f": {detail}" if detail else ""), "FieldValueRequired")


def unsupported_cause(path: str, value: Any, supported: list[str]) -> Cause:
    shown = ", ".join(json.dumps(s) for s in supported)
    return Cause(
        path, f"Unsupported value: {go_quote(value)}: supported values: {shown}", "FieldValueNotSupported"
    )


def forbidden_cause(path: str, detail: str) -> Cause:
    return Cause(path, f"Forbidden: {detail}", "FieldValueForbidden")


# -- primitive checks, each returning the list of messages validation.IsX returns -------------------------
def dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(regex_error(_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def path_segment_name(value: str) -> list[str]:
    # path.IsValidPathSegmentName: rbac object names only need to be usable in a URL path
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def qualified_name(value: str) -> list[str]:
    # validation.IsQualifiedName: label keys and annotation keys
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QNAME.match(name):
        errs.append("name part " + regex_error(_QNAME_ERR, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE.match(value):
        errs.append(regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def config_key(value: str) -> list[str]:
    # validation.IsConfigMapKey: keys of Secret data
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_KEY.match(value):
        errs.append(regex_error(_CONFIG_KEY_ERR, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


NameCheck = Callable[[str], list[str]]


def _mask_trailing_dash(name: str) -> str:
    # generateName may end in '-'; the generated suffix makes it valid
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def validate_object_meta(meta: Mapping[str, Any], namespaced: bool, name_check: NameCheck) -> list[Cause]:
    """ValidateObjectMeta: name (or generateName), namespace, labels, annotations."""
    causes: list[Cause] = []
    name = meta.get("name") or ""
    generate = meta.get("generateName") or ""
    if generate:
        for msg in name_check(_mask_trailing_dash(generate)):
            causes.append(invalid_cause("metadata.generateName", generate, msg))
    if not name:
        if not generate:
            causes.append(required_cause("metadata.name", "name or generateName is required"))
    else:
        for msg in name_check(name):
            causes.append(invalid_cause("metadata.name", name, msg))
    if namespaced:
        ns = meta.get("namespace") or ""
        if not ns:
            causes.append(required_cause("metadata.namespace"))
        else:
            causes.extend(invalid_cause("metadata.namespace", ns, m) for m in dns1123_label(ns))
    elif meta.get("namespace"):
        causes.append(forbidden_cause("metadata.namespace", "not allowed on this type"))
    causes.extend(validate_labels(meta.get("labels")))
    causes.extend(validate_annotations(meta.get("annotations")))
    causes.extend(validate_owner_references(meta.get("ownerReferences")))
    causes.extend(validate_finalizers(meta.get("finalizers")))
    return causes


ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
_STANDARD_FINALIZERS = ("kubernetes", ORPHAN, FOREGROUND)


def validate_finalizers(finalizers: Any) -> list[Cause]:
    """ValidateFinalizers (qualified names, not both orphan and foregroundDeletion), then core's check that an
    unqualified name is a standard one."""
    if not isinstance(finalizers, list):
        return []
    causes = [invalid_cause("metadata.finalizers", f, m) for f in finalizers for m in qualified_name(str(f))]
    if ORPHAN in finalizers and FOREGROUND in finalizers:
        causes.append(
            invalid_cause(
                "metadata.finalizers", finalizers, f"finalizer {ORPHAN} and {FOREGROUND} cannot be both set"
            )
        )
    for i, name in enumerate(finalizers):
        if "/" not in str(name) and name not in _STANDARD_FINALIZERS:
            causes.append(
                invalid_cause(
                    f"metadata.finalizers[{i}]",
                    name,
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            )
    return causes


def validate_owner_references(refs: Any) -> list[Cause]:
    """ValidateOwnerReferences: apiVersion (a version), kind, name and uid present; one controller at most."""
    if not isinstance(refs, list):
        return []
    path = "metadata.ownerReferences"
    causes: list[Cause] = []
    controller = ""
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        if not str(ref.get("apiVersion") or "").rpartition("/")[2]:
            causes.append(
                invalid_cause(f"{path}.apiVersion", ref.get("apiVersion") or "", "version must not be empty")
            )
        for key in ("kind", "name", "uid"):
            if not ref.get(key):
                causes.append(invalid_cause(f"{path}.{key}", ref.get(key) or "", "must not be empty"))
        if ref.get("controller") is True:
            this = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if controller:
                causes.append(
                    invalid_cause(
                        path,
                        refs,
                        "Only one reference can have Controller set to true. "
                        f'Found "true" in references for {controller} and {this}',
                    )
                )
            else:
                controller = this
    return causes


def validate_labels(labels: Any) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(labels, dict):
        return causes
    for key, value in labels.items():
        causes.extend(invalid_cause("metadata.labels", key, m) for m in qualified_name(key))
        causes.extend(invalid_cause("metadata.labels", value, m) for m in label_value(str(value)))
    return causes


def validate_annotations(annotations: Any) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(annotations, dict):
        return causes
    for key in annotations:
        causes.extend(invalid_cause("metadata.annotations", key, m) for m in qualified_name(key.lower()))
    total = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if total > 256 * 1024:
        causes.append(
            Cause(
                "metadata.annotations", f"Too long: must have at most {256 * 1024} bytes", "FieldValueTooLong"
            )
        )
    return causes


def validate_meta_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    """ValidateObjectMetaUpdate: the immutable parts of metadata."""
    causes: list[Cause] = []
    new_meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
    if old_meta.get("deletionTimestamp"):
        added = sorted(set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or []))
        if added:
            causes.append(
                forbidden_cause(
                    "metadata.finalizers",
                    f"no new finalizers can be added if the object is being deleted, found new finalizers {go_syntax(added)}",
                )
            )
    for key in ("name", "namespace"):
        if (new_meta.get(key) or "") != (old_meta.get(key) or ""):
            causes.append(invalid_cause(f"metadata.{key}", new_meta.get(key) or "", "field is immutable"))
    return causes


def raise_if(causes: list[Cause], kind: str, name: str, group: str = "") -> None:
    if causes:
        raise invalid(kind, name, causes, group)
