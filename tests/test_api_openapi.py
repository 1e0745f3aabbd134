"""/openapi.json matches the router: every route documented, nothing documented that is not."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.test_api_helpers import Client
from timerd.api.openapi import openapi_document
from timerd.api.routes import add_routes
from timerd.cursor import CURSOR_PATTERN

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


async def test_the_document_states_the_body_rules_and_this_daemons_bounds(
    make_api: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_api(list_limit_max=7, batch_max=3, max_delay_s=7200, max_url_length=99)
    doc = await (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for name in ("CreateTimer", "PatchTimer", "CreateBatch"):
        assert schemas[name]["additionalProperties"] is False, name
    create = schemas["CreateTimer"]
    assert create["properties"]["hours"]["maximum"] == 2
    assert create["properties"]["seconds"]["maximum"] == 7200
    assert create["properties"]["url"]["maxLength"] == 99
    assert "2 hours" in create["description"]
    assert len(create["oneOf"]) == 2  # fire_at, or durations: never both
    assert schemas["CreateBatch"]["properties"]["timers"]["maxItems"] == 3
    params = {p["name"]: p for p in doc["paths"]["/timers"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 7
    assert params["cursor"]["schema"]["pattern"] == CURSOR_PATTERN


async def test_a_cursor_is_any_string_of_its_pattern(api: Client) -> None:
    for cursor in ("0~a", "-1.5e-07~x_-Y", "1800000000.25~AbCdEfGhIjKlMnOpQrStUvW"):
        assert re.fullmatch(CURSOR_PATTERN, cursor)
        resp = await api.get("/timers", params={"cursor": cursor})
        assert resp.status == 200, await resp.text()
