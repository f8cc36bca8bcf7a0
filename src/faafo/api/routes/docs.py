"""``GET /docs``: the REST API's reference, rendered on the server from the OpenAPI document.

FastAPI's own ``/docs`` (Swagger UI) and ``/redoc`` load their scripts and
fonts from public CDNs: offline, or behind a proxy that blocks them, the page
is blank, and every visit tells those hosts about it. The pages of faafo
fetch nothing from any other host. This page needs no script at all: it lists
every operation (parameters, bodies, answers) and every schema from the same
document that ``/openapi.json`` serves, so it can never disagree with it, and
it keeps working wherever the API does. Tools that want the machine-readable
document take ``/openapi.json``.

It describes the API, not its data, so it stays public with ``--private-reads``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from faafo.api.routes import pages

router = APIRouter(include_in_schema=False)

METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
REF_PREFIX = "#/components/schemas/"
# A type as a list of pieces: ("text", "array of ") or ("ref", "FractalOut").
Pieces = list[tuple[str, str]]


@dataclass(frozen=True)
class Item:
    """A parameter or a schema property: its name, type, and what limits it."""

    name: str
    type: Pieces
    required: bool
    description: str
    limits: str


@dataclass(frozen=True)
class Body:
    content_type: str
    type: Pieces


@dataclass(frozen=True)
class Answer:
    code: str
    description: str
    bodies: list[Body]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    anchor: str
    summary: str
    description: str
    secured: bool
    parameters: list[Item]
    bodies: list[Body]
    answers: list[Answer]


@dataclass
class Group:
    name: str
    operations: list[Operation] = field(default_factory=list)


@dataclass(frozen=True)
class Schema:
    name: str
    description: str
    properties: list[Item]


def type_of(schema: dict[str, Any]) -> Pieces:
    """A readable type for a JSON schema: ``integer``, ``array of FractalOut``, ``X or null``."""
    if "$ref" in schema:
        return [("ref", str(schema["$ref"]).removeprefix(REF_PREFIX))]
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            pieces: Pieces = []
            for index, option in enumerate(schema[combinator]):
                if index:
                    pieces.append(("text", " or "))
                pieces += type_of(option)
            return pieces
    kind = schema.get("type")
    if kind == "array":
        return [("text", "array of "), *type_of(schema.get("items", {}))]
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return [("text", "object of "), *type_of(schema["additionalProperties"])]
    if "enum" in schema:
        return [("text", " | ".join(str(v) for v in schema["enum"]))]
    text = str(kind or "any")
    if schema.get("format"):
        text += f" ({schema['format']})"
    return [("text", text)]


def limits_of(schema: dict[str, Any]) -> str:
    """The constraints a client must respect, in a few words."""
    parts = []
    options = [schema, *schema.get("anyOf", [])]
    for option in options:
        for key, sign in (("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">")):
            if key in option:
                parts.append(
                    f"{sign} {option[key]:g}"
                    if isinstance(option[key], float)
                    else f"{sign} {option[key]}"
                )
        for key, label in (
            ("minLength", "at least {} characters"),
            ("maxLength", "at most {} characters"),
            ("pattern", "matches {}"),
        ):
            if key in option:
                parts.append(label.format(option[key]))
    if schema.get("default") is not None:
        parts.append(f"default {schema['default']}")
    return ", ".join(dict.fromkeys(parts))


def _bodies(content: dict[str, Any]) -> list[Body]:
    return [Body(kind, type_of(media.get("schema", {}))) for kind, media in content.items()]


def _operation(path: str, method: str, spec: dict[str, Any]) -> Operation:
    parameters = [
        Item(
            name=f"{p['name']} ({p['in']})",
            type=type_of(p.get("schema", {})),
            required=bool(p.get("required")),
            description=p.get("description") or p.get("schema", {}).get("description", ""),
            limits=limits_of(p.get("schema", {})),
        )
        for p in spec.get("parameters", [])
    ]
    answers = [
        Answer(code, answer.get("description", ""), _bodies(answer.get("content", {})))
        for code, answer in sorted(spec.get("responses", {}).items())
    ]
    anchor = re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")
    return Operation(
        method=method.upper(),
        path=path,
        anchor=anchor,
        summary=spec.get("summary", ""),
        description=spec.get("description", ""),
        secured=bool(spec.get("security")),
        parameters=parameters,
        bodies=_bodies(spec.get("requestBody", {}).get("content", {})),
        answers=answers,
    )


def reference(document: dict[str, Any]) -> tuple[list[Group], list[Schema]]:
    """The document's operations grouped by tag (in the document's order) and its schemas."""
    groups: dict[str, Group] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["fractals"])[0]
                groups.setdefault(tag, Group(tag)).operations.append(
                    _operation(path, method, item[method])
                )
    schemas = []
    for name, spec in sorted(document.get("components", {}).get("schemas", {}).items()):
        required = set(spec.get("required", []))
        properties = [
            Item(key, type_of(prop), key in required, prop.get("description", ""), limits_of(prop))
            for key, prop in spec.get("properties", {}).items()
        ]
        schemas.append(Schema(name, spec.get("description", ""), properties))
    return list(groups.values()), schemas


@router.get("/docs", response_class=HTMLResponse, name="api_docs")
def api_docs(request: Request) -> HTMLResponse:
    """The reference of every operation, from this process's own OpenAPI document."""
    document = request.app.openapi()
    groups, schemas = reference(document)
    return pages.render(
        request,
        "docs.html",
        {"info": document.get("info", {}), "groups": groups, "schemas": schemas},
    )
