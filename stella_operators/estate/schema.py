"""JSON Schema of the estate file, for editors and CI linters (`stella schema`)."""

from __future__ import annotations

from typing import Any

from stella_operators.estate.models import Estate


def estate_json_schema() -> dict[str, Any]:
    schema = Estate.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "stella-operators estate"
    return schema
