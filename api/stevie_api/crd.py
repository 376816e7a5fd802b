"""CustomResourceDefinitions generated from the models, with structural openAPIV3Schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stevie_api import GROUP, VERSION
from stevie_api.kinds import KINDS, KindInfo

__all__ = [
    "CRD_HEADER",
    "crd_filename",
    "generate_crd",
    "generate_crds",
    "missing_descriptions",
    "render_crd",
    "structural_schema",
    "structural_violations",
    "write_crds",
]

CRD_HEADER = "# Generated from stevie_api by `stevie crds` (make crds): do not edit.\n"

_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"
_INT_OR_STRING_BRANCHES = ({"type": "integer"}, {"type": "string"})
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "nullable",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "items",
    "required",
    "properties",
    "additionalProperties",
)
# Keys of apiextensions.k8s.io/v1 JSONSchemaProps (besides x-kubernetes-* extensions).
_ALLOWED_KEYS = set(_KEY_ORDER) | {
    "title",
    "multipleOf",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "example",
    "externalDocs",
}
_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers "
    "should convert recognized schemas to the latest internal value, and may reject "
    "unrecognized values."
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers "
    "may infer this from the endpoint the client submits requests to. In CamelCase."
)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    keys = [k for k in _KEY_ORDER if k in node]
    keys += sorted(k for k in node if k not in _KEY_ORDER)
    return {k: node[k] for k in keys}


class _Converter:
    """Turns a pydantic JSON Schema (2020-12) into a structural OpenAPI v3.0 schema."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            ref = node["$ref"]
            name = ref.rsplit("/", 1)[-1]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**self.defs[name], **siblings}
        return node

    def convert(self, raw: dict[str, Any] | bool) -> dict[str, Any]:
        if raw is True or raw == {}:
            return {_PRESERVE: True}
        if raw is False:
            raise ValueError("a `false` schema cannot be represented")
        node = dict(self.resolve(raw))
        node.pop("title", None)
        for union in ("anyOf", "oneOf"):
            if union in node:
                return self._union(node, node.pop(union))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "const":
                out["enum"] = [value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                out[bound] = value
                out[key] = True
            elif key == "default":
                if value is not None and not isinstance(value, dict | list):
                    out["default"] = value
            elif key == "properties":
                out["properties"] = {k: self.convert(v) for k, v in value.items()}
            elif key == "items":
                out["items"] = self.convert(value)
            elif key == "additionalProperties":
                if value is False:
                    continue  # kubectl's strict field validation and pruning do this
                if value is True or value == {}:
                    out[_PRESERVE] = True  # dict[str, Any]: an object of anything
                    continue
                out["additionalProperties"] = self.convert(value)
            elif key in ("$defs", "discriminator", "examples"):
                continue
            else:
                out[key] = value
        if out.get(_INT_OR_STRING):  # as Kubernetes writes IntOrString and Quantity
            out.pop("type", None)
            out["anyOf"] = [dict(branch) for branch in _INT_OR_STRING_BRANCHES]
        if "enum" in out and "type" not in out:
            out["type"] = _json_type(out["enum"][0])
        return _ordered(out)

    def _union(self, outer: dict[str, Any], variants: list[dict[str, Any]]) -> dict[str, Any]:
        non_null = [v for v in variants if v.get("type") != "null"]
        nullable = len(non_null) < len(variants)
        types = {self.resolve(v).get("type") for v in non_null}
        if len(non_null) == 1:
            inner = self.convert(non_null[0])
        elif types == {"integer", "number"} and all(len(v) == 1 for v in non_null):
            inner = {"type": "number"}
        else:  # a mixed scalar union: any JSON value, checked by the model
            inner = {_PRESERVE: True}
        outer_converted = self.convert(outer) if outer else {}
        outer_converted.pop(_PRESERVE, None)
        merged = {**inner, **outer_converted}
        if nullable:
            merged["nullable"] = True
        return _ordered(merged)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def structural_schema(info: KindInfo) -> dict[str, Any]:
    """The openAPIV3Schema of a kind."""
    raw = info.model.model_json_schema(by_alias=True, mode="validation")
    converter = _Converter(raw.get("$defs", {}))
    properties = raw["properties"]
    spec = converter.convert(properties["spec"])
    status = converter.convert(properties["status"])
    status.pop("nullable", None)
    return {
        "description": " ".join(str(raw.get("description", info.kind)).split()),
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"description": _API_VERSION_DOC, "type": "string"},
            "kind": {"description": _KIND_DOC, "type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def generate_crd(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of a kind."""
    columns = []
    for column in info.printer_columns:
        entry: dict[str, Any] = {
            "name": column.name,
            "type": column.type,
            "jsonPath": column.json_path,
            "description": column.description,
        }
        if column.format:
            entry["format"] = column.format
        if column.priority:
            entry["priority"] = column.priority
        columns.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/name": "stevie", "app.kubernetes.io/part-of": "stevie"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": [info.short_name],
                "categories": ["stevie"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": structural_schema(info)},
                }
            ],
        },
    }


def crd_filename(info: KindInfo) -> str:
    """File name of a kind's CRD, e.g. stevie.dev_trainingruns.yaml."""
    return f"{GROUP}_{info.plural}.yaml"


def generate_crds() -> dict[str, dict[str, Any]]:
    """Every CRD, by file name (sorted)."""
    crds = {crd_filename(info): generate_crd(info) for info in KINDS.values()}
    return dict(sorted(crds.items()))


def render_crd(crd: dict[str, Any]) -> str:
    """The YAML text of a CRD file (deterministic)."""
    return CRD_HEADER + yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=False)


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into a directory (created if needed); returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, crd in generate_crds().items():
        path = directory / filename
        path.write_text(render_crd(crd), encoding="utf-8")
        written.append(path)
    return written


def structural_violations(schema: dict[str, Any], path: str = "") -> list[str]:
    """Reasons why a schema is not a structural schema Kubernetes accepts (empty: fine).

    Checks: no $ref/$defs, only JSONSchemaProps keys, every node typed (except
    preserve-unknown-fields and int-or-string nodes), no types in anyOf/oneOf/allOf/not (but
    an int-or-string node's ``anyOf: [{type: integer}, {type: string}]``),
    OpenAPI 3.0 boolean exclusive bounds, no uniqueItems, properties and additionalProperties
    not together, arrays with items, and at the root a bare `metadata: {type: object}`.
    """
    problems: list[str] = []
    where = path or "<root>"
    for key in schema:
        if key.startswith("x-kubernetes-"):
            continue
        if key not in _ALLOWED_KEYS:
            problems.append(f"{where}: key {key!r} is not allowed")
    extended = schema.get(_PRESERVE) is True or schema.get(_INT_OR_STRING) is True
    kind = schema.get("type")
    if kind is None and not extended:
        problems.append(f"{where}: no type")
    elif kind is not None and kind not in _TYPES:
        problems.append(f"{where}: type {kind!r} is not one of {sorted(_TYPES)}")
    if _PRESERVE in schema and schema[_PRESERVE] is not True:
        problems.append(f"{where}: {_PRESERVE} must be true when set")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in schema and not isinstance(schema[key], bool):
            problems.append(f"{where}: {key} must be a boolean (OpenAPI 3.0)")
    if schema.get("uniqueItems") is True:
        problems.append(f"{where}: uniqueItems: true is not allowed")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{where}: properties and additionalProperties together")
    if kind == "array" and not isinstance(schema.get("items"), dict):
        problems.append(f"{where}: array without an items schema")
    for key in ("anyOf", "oneOf", "allOf", "not"):
        int_or_string = key == "anyOf" and schema.get(_INT_OR_STRING) is True
        if int_or_string and schema[key] == list(_INT_OR_STRING_BRANCHES):
            continue  # the one typed anyOf Kubernetes allows (x-kubernetes-int-or-string)
        if key in schema:
            branches = schema[key] if isinstance(schema[key], list) else [schema[key]]
            for branch in branches:
                for forbidden in ("type", "description", "default", "nullable", "properties"):
                    if forbidden in branch:
                        problems.append(f"{where}: {key} branch sets {forbidden!r}")
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        if not path and name == "metadata":
            if child != {"type": "object"}:
                problems.append("metadata: the root metadata must be exactly {type: object}")
            continue
        problems += structural_violations(child, child_path)
    if isinstance(schema.get("items"), dict):
        problems += structural_violations(schema["items"], f"{path}[]")
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        problems += structural_violations(additional, f"{path}{{}}")
    elif additional is not None:
        problems.append(f"{where}: additionalProperties must be a schema, not {additional!r}")
    return problems


def missing_descriptions(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of properties without a description (the root metadata excepted)."""
    missing: list[str] = []
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        if child_path == "metadata":
            continue
        if not str(child.get("description", "")).strip():
            missing.append(child_path)
        missing += missing_descriptions(child, child_path)
    if isinstance(schema.get("items"), dict):
        missing += missing_descriptions(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        missing += missing_descriptions(schema["additionalProperties"], f"{path}{{}}")
    return missing
