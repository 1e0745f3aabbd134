"""/openapi.json matches the router: every route documented, nothing documented that is not."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tests.test_api_helpers import Client
from timerd.api import add_routes
from timerd.openapi import openapi_document

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _normalize(path: str) -> str:
    """Turn `{id}` and `{id:regex}` into `{}` so both sides compare equal."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    operations = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path, info
        operations.add((route.method.lower(), _normalize(path)))
    return operations


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, _normalize(path))
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


async def test_document_and_router_agree(api: Client) -> None:
    resp = await api.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    served = router_operations(api.server.app)
    documented = document_operations(doc)
    assert served, "no routes found"
    assert served - documented == set(), "routes missing from /openapi.json"
    assert documented - served == set(), "documented operations without a handler"


def test_add_routes_matches_the_document_too() -> None:
    app = web.Application()
    add_routes(app)
    assert router_operations(app) == document_operations(openapi_document())


async def test_document_is_openapi_3_and_self_consistent(api: Client) -> None:
    doc = await (await api.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/")
        node: Any = doc
        for part in ref[2:].split("/"):
            assert part in node, ref
            node = node[part]


async def test_every_operation_has_responses_and_path_params(api: Client) -> None:
    doc = await (await api.get("/openapi.json")).json()
    for path, item in doc["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            assert operation["responses"], (method, path)
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)
            params = [*item.get("parameters", []), *operation.get("parameters", [])]
            declared = {p["name"] for p in params if p.get("in") == "path"}
            assert declared == names, (method, path)


async def test_documented_success_codes_match_the_handlers(api: Client) -> None:
    doc = await (await api.get("/openapi.json")).json()
    paths = doc["paths"]
    assert "201" in paths["/timers"]["post"]["responses"]
    assert "201" in paths["/timers/batch"]["post"]["responses"]
    assert "202" in paths["/timers/{id}/fire"]["post"]["responses"]
    assert "200" in paths["/timers/{id}"]["get"]["responses"]
    assert "200" in paths["/timers/{id}"]["delete"]["responses"]
    assert "200" in paths["/timers/{id}"]["patch"]["responses"]
    for code in ("400", "415", "422", "413"):
        assert code in paths["/timers"]["post"]["responses"]
