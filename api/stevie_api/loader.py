"""YAML files -> validated resources, with one clear line per problem.

Lines look like `examples/bad.yaml:12: TrainingRun/foo: spec.env.window: must be >= 2 (got 0)`
(the line number is left out when unknown, e.g. for a dict that did not come from a file).
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from stevie_api import API_VERSION
from stevie_api.kinds import KINDS, Resource

__all__ = ["SafeLoader", "SpecError", "load_resources", "parse_resource", "parse_yaml"]

Loc = tuple[str | int, ...]

_MAX_SHOWN = 60
_UNION_TAGS = {"bool", "int", "float", "str", "none", "list", "dict"}


class SpecError(ValueError):
    """Invalid resource(s). str() is one line per problem; `problems` lists them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class SafeLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, read like Kubernetes reads YAML: timestamps stay strings and
    `1e-4` is a float (YAML 1.2), not a string."""


SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[str]) -> None:
    """Record the line of every key and item; report duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*loc, key)
            if key in seen:
                problems.append(f"{key_node.start_mark.line + 1}: {_render(child)}: duplicate key")
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines[child] = item.start_mark.line + 1
            _index_lines(item, child, lines, problems)


def parse_yaml(text: str, source: str) -> list[tuple[Any, int, dict[Loc, int]]]:
    """The documents of a YAML stream: (data, first line, line of every key/item).
    Empty documents are skipped."""
    documents = []
    loader = SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Loc, int] = {}
            duplicates: list[str] = []
            _index_lines(node, (), lines, duplicates)
            if duplicates:
                raise SpecError([f"{source}:{d}" for d in duplicates])
            data = loader.construct_document(node)
            if data is not None:
                documents.append((data, node.start_mark.line + 1, lines))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        what = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise SpecError([f"{where}: YAML syntax error: {what}"]) from None
    except yaml.YAMLError as err:
        raise SpecError([f"{source}: YAML error: {' '.join(str(err).split())}"]) from None
    finally:
        loader.dispose()
    return documents


def load_resources(path: Path) -> list[Resource]:
    """Every resource in a (multi-document) YAML file, validated.

    Raises SpecError listing every problem in the file (one line each)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SpecError([f"{source}: cannot read: {reason}"]) from None
    resources: list[Resource] = []
    problems: list[str] = []
    seen: set[tuple[str, str | None, str]] = set()
    for data, line, lines in parse_yaml(text, source):
        try:
            resource = parse_resource(data, source, lines=lines, line=line)
        except SpecError as err:
            problems += err.problems
            continue
        key = (resource.kind, resource.metadata.namespace, resource.metadata.name)
        if key in seen:
            problems.append(
                f"{source}:{line}: {resource.kind}/{resource.metadata.name}: defined twice"
            )
        seen.add(key)
        resources.append(resource)
    if problems:
        raise SpecError(problems)
    if not resources:
        raise SpecError([f"{source}: no resources in the file"])
    return resources


def parse_resource(
    doc: Any,
    source: str,
    *,
    lines: dict[Loc, int] | None = None,
    line: int | None = None,
) -> Resource:
    """Validate one resource (a dict as in YAML/JSON, camelCase keys) into its model.

    `source` prefixes every error line (a file name, or e.g. a namespace/name); `lines` and
    `line` (from parse_yaml) add line numbers."""
    lines = lines or {}

    def prefix(loc: Loc = ()) -> str:
        found = _line_of(loc, lines) or line
        return f"{source}:{found}" if found else source

    if not isinstance(doc, dict):
        raise SpecError(
            [
                f"{prefix()}: expected a mapping with apiVersion, kind, metadata and spec "
                f"(got {_shown(doc)})"
            ]
        )
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        got = "missing" if kind is None else f"got {_shown(kind)}"
        raise SpecError([f"{prefix(('kind',))}: kind: must be one of {', '.join(KINDS)} ({got})"])
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    label = f"{kind}/{name if isinstance(name, str) and name else '<no name>'}"
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        got = "missing" if api_version is None else f"got {_shown(api_version)}"
        raise SpecError(
            [f"{prefix(('apiVersion',))}: {label}: apiVersion: must be {API_VERSION} ({got})"]
        )
    model = KINDS[kind].model
    try:
        payload = json.dumps(doc, default=str)
        return model.model_validate_json(payload, strict=True, by_alias=True, by_name=False)
    except ValidationError as err:
        found = [
            (
                _line_of(loc, lines) or line or 0,
                f"{prefix(loc)}: {label}: {_render(loc) or '<root>'}: {message}",
            )
            for loc, message in _messages(err.errors(), model)
        ]
        found.sort(key=lambda item: item[0])  # in file order
        raise SpecError([problem for _, problem in found]) from None
    except ValueError as err:  # e.g. a float that is not JSON (nan in strict contexts)
        raise SpecError([f"{prefix()}: {label}: {err}"]) from None


def problems(err: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """One line per problem of a ValidationError, ``<prefix><camelCase.path>: <message>``."""
    return [
        f"{prefix}{_render(loc) or '<root>'}: {msg}" for loc, msg in _messages(err.errors(), model)
    ]


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _render(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _is_tag(part: str | int) -> bool:
    """Whether a loc element names a union member or a validator rather than a field."""
    return isinstance(part, str) and (
        part in _UNION_TAGS or "[" in part or part.startswith(("function-", "json-or-python"))
    )


def _messages(errors: list[ErrorDetails], model: type[BaseModel]) -> list[tuple[Loc, str]]:
    """One (loc, message) per problem: union branches of the same value are merged."""
    grouped: dict[Loc, list[ErrorDetails]] = {}
    for error in errors:
        loc = tuple(p for p in error["loc"] if not _is_tag(p))
        grouped.setdefault(loc, []).append(error)
    out = []
    for loc, group in grouped.items():
        if len(group) == 1:
            out.append((loc, _message(group[0], loc, model)))
            continue
        wanted = []
        for error in group:
            text = _message(error, loc, model, with_input=False)
            text = text.removeprefix("must be ")
            if text not in wanted:
                wanted.append(text)
        joined = ", ".join(wanted[:-1]) + f" or {wanted[-1]}" if len(wanted) > 1 else wanted[0]
        out.append((loc, f"must be {joined} (got {_shown(group[0]['input'])})"))
    return out


_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _message(error: ErrorDetails, loc: Loc, model: type[BaseModel], with_input: bool = True) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    got = f" (got {_shown(error['input'])})" if with_input else ""
    if kind == "extra_forbidden":
        return "unknown field" + _suggestion(model, loc)
    if kind == "missing":
        return "required field missing"
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        return f"must be {symbol} {ctx[key]}{got}"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"must have {bound} {limit} item(s) (got {ctx.get('actual_length')})"
    if kind in ("string_too_short", "string_too_long"):
        bound = "at least" if kind == "string_too_short" else "at most"
        limit = ctx.get("min_length" if kind == "string_too_short" else "max_length")
        return f"must have {bound} {limit} character(s){got}"
    if kind in ("value_error", "assertion_error"):
        text = str(error["msg"])
        for lead in ("Value error, ", "Assertion failed, "):
            text = text.removeprefix(lead)
        return " ".join(text.split())
    text = str(error["msg"])
    text = text.replace("Input should be", "must be").replace("input should be", "must be")
    return " ".join(text.split()) + got


def _suggestion(model: type[BaseModel], loc: Loc) -> str:
    """' (did you mean X?)' for an unknown field, from the fields of its parent model."""
    parent = _model_at(model, loc[:-1])
    if parent is None or not loc or not isinstance(loc[-1], str):
        return ""
    unknown = loc[-1]
    aliases = {name: info.alias or name for name, info in parent.model_fields.items()}
    if unknown in aliases:
        return f" (did you mean {aliases[unknown]}? fields are camelCase)"
    close = difflib.get_close_matches(unknown, list(aliases.values()), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class at a loc below `model` (through lists, dicts and Optionals)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if origin is list:
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {info.alias or name: info for name, info in annotation.model_fields.items()}
            if part not in fields:
                return None
            annotation = fields[str(part)].annotation
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any) -> Any:
    """Annotated[X, ...] -> X and X | None -> X."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation
