"""Specs handed to trainer commands: a whole resource (its name comes along) or a bare spec."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["load_spec_text"]

M = TypeVar("M", bound=BaseModel)


def load_spec_text(text: str, source: str, model: type[M]) -> tuple[M, str | None]:
    """``model`` from JSON or YAML ``text``: a resource (returns its metadata.name too) or a
    bare spec. Problems raise SpecError (exit 3, not retried) with one line per problem
    naming ``source``."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        from stevie_api.loader import SpecError

        raise SpecError([f"{source}: not valid JSON or YAML: {err}"]) from None
    name = None
    if isinstance(doc, dict) and "spec" in doc and "kind" in doc:
        name = (doc.get("metadata") or {}).get("name")
        doc = doc["spec"]
    try:
        spec = model.model_validate(doc, by_alias=True, by_name=False)
    except ValidationError as err:
        # The loader knows every kind (it imports them all): only a bad spec needs it.
        from stevie_api.loader import SpecError, problems

        raise SpecError(problems(err, model, prefix=f"{source}: spec.")) from None
    return spec, name
