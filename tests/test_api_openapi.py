"""/openapi.json matches the router: every route documented, nothing documented that is not."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.api_helpers import PROBLEM as PROBLEM_TYPE
from tests.api_helpers import Client
from tests.conftest import Receiver
from timerd.api.openapi import DocumentLimits, openapi_document
from timerd.api.routes import JSON_TYPE as JSON
from timerd.api.routes import add_routes
from timerd.cursor import CURSOR_PATTERN
from timerd.delivery.signing import parse_secret, sign

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
EXAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""The secret the document's example signature was made with."""


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


# the document as a reader uses it: described, exemplified, valid --------------------------

ID = "AAAAAAAAAAAAAAAAAAAAAA"
DOC_URI = "urn:timerd:openapi"
EXAMPLE_TYPES = ("application/json", "application/problem+json", "text/plain")


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], list[Any]]]:
    """Every operation of `paths` and `webhooks`: (section + path, method, operation, params)."""
    found = []
    for section in ("paths", "webhooks"):
        for path, item in doc[section].items():
            for method, op in item.items():
                if method in HTTP_METHODS:
                    params = [*item.get("parameters", []), *op.get("parameters", [])]
                    found.append((f"{section}:{path}", method, op, params))
    return found


def top_schemas(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every schema the document holds outside another schema, with its JSON pointer."""
    found = [
        (_pointer("components", "schemas", name), schema)
        for name, schema in doc["components"]["schemas"].items()
    ]
    for section in ("paths", "webhooks"):
        for path, item in doc[section].items():
            base = (section, path)
            for i, param in enumerate(item.get("parameters", [])):
                found.append((_pointer(*base, "parameters", str(i), "schema"), param["schema"]))
            for method, op in item.items():
                if method not in HTTP_METHODS:
                    continue
                for i, param in enumerate(op.get("parameters", [])):
                    where = _pointer(*base, method, "parameters", str(i), "schema")
                    found.append((where, param["schema"]))
                for media, content in op.get("requestBody", {}).get("content", {}).items():
                    where = _pointer(*base, method, "requestBody", "content", media, "schema")
                    found.append((where, content["schema"]))
                for code, response in op["responses"].items():
                    for media, content in response.get("content", {}).items():
                        if "schema" in content:
                            where = _pointer(*base, method, "responses", code, "content", media)
                            found.append((where + "/schema", content["schema"]))
    return found


def fields(pointer: str, schema: Any) -> list[tuple[str, Any]]:
    """Every property below `schema` (through properties, items and additionalProperties),
    but not the constraint-only branches of oneOf and anyOf."""
    found: list[tuple[str, Any]] = []
    if not isinstance(schema, dict) or "$ref" in schema:
        return found
    for name, sub in schema.get("properties", {}).items():
        where = f"{pointer}/properties/{name}"
        found += [(where, sub), *fields(where, sub)]
    for key in ("items", "additionalProperties"):
        found += fields(f"{pointer}/{key}", schema.get(key))
    return found


def example_sites(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every (schema pointer, example) pair: in schemas, parameters, headers, media types."""
    sites: list[tuple[str, Any]] = []

    def walk(pointer: str, node: Any, in_schema: bool) -> None:
        if isinstance(node, list):
            for i, value in enumerate(node):
                walk(f"{pointer}/{i}", value, in_schema)
            return
        if not isinstance(node, dict):
            return
        if in_schema:
            sites.extend((pointer, e) for e in node.get("examples", []))
            sites.extend((pointer, node[k]) for k in ("example",) if k in node)
        elif isinstance(node.get("schema"), dict):  # a parameter, header or media type
            sites.extend((pointer + "/schema", node[k]) for k in ("example",) if k in node)
            named = node.get("examples", {})
            sites.extend((pointer + "/schema", e["value"]) for e in named.values())
        for key, value in node.items():
            if in_schema and key in ("example", "examples"):
                continue
            where = pointer + _pointer(key)
            top = where.startswith("/components/schemas/") and where.count("/") == 3
            walk(where, value, in_schema or key == "schema" or top)

    walk("", doc, False)
    return sites


def test_the_document_is_valid_openapi_3_1() -> None:
    for limits in (DocumentLimits(), DocumentLimits(max_delay_s=7200, batch_max=3)):
        doc = openapi_document(limits)
        assert doc["openapi"] == "3.1.0"
        validate(doc)  # raises with the path of the first broken rule


def test_every_operation_response_and_parameter_is_described() -> None:
    doc = openapi_document()
    for path, method, op, params in operations(doc):
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        assert op.get("description"), where
        for param in params:
            assert param.get("description"), (where, param["name"])
            assert "example" in param, (where, param["name"])
        for code, response in op["responses"].items():
            resolved = _resolve(doc, response)
            assert resolved.get("description"), (where, code)
            for media, content in resolved.get("content", {}).items():
                if media in EXAMPLE_TYPES:
                    assert "example" in content or "examples" in content, (where, code, media)
            for name, header in resolved.get("headers", {}).items():
                assert header.get("description"), (where, code, name)


def test_every_schema_property_has_a_description_and_an_example() -> None:
    doc = openapi_document()
    checked = 0
    for pointer, schema in top_schemas(doc):
        for where, prop in fields(pointer, schema):
            if prop is False:  # a field some form of the body forbids
                continue
            target = _resolve(doc, prop)
            assert prop.get("description"), where
            assert any(k in prop or k in target for k in ("example", "examples")), where
            checked += 1
    assert checked > 80


def test_every_example_matches_its_schema() -> None:
    doc = openapi_document()
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)
    sites = example_sites(doc)
    assert len(sites) > 150
    for pointer, example in sites:
        validator = Draft202012Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=registry)
        errors = [e.message for e in validator.iter_errors(example)]
        assert not errors, (pointer, example, errors)


def test_error_answers_are_problems_with_the_status_they_document() -> None:
    doc = openapi_document()
    for path, method, op, _ in operations(doc):
        if path.startswith("webhooks:"):
            continue
        for code, response in op["responses"].items():
            if not code.startswith(("4", "5")):
                continue
            (media,) = _resolve(doc, response)["content"].items()
            assert media[0] == PROBLEM_TYPE, (method, path, code)
            assert media[1]["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert media[1]["example"]["status"] == int(code), (method, path, code)
            assert media[1]["example"]["type"].startswith("urn:timerd:problem:")


def _concrete(path: str) -> str:
    """A request path for a documented template: an id, or a file the pages have."""
    path = path.replace("/ui/static/vendor/{name}", "/ui/static/vendor/swagger-ui.css")
    return path.replace("{name}", "status.js").replace("{id}", ID)


async def test_each_operation_documents_the_guards_that_answer_it(
    make_api: Callable[..., Awaitable[Client]],
) -> None:
    """Every guard's refusal, sent to every operation, is a status that operation documents
    (and the operations a guard never refuses do not list it)."""
    doc = openapi_document()
    open_api = await make_api(max_body_bytes=1024)
    with_token = await make_api(token="docs-token")
    big = {"url": "https://example.com/" + "a" * 2000, "seconds": 1}
    checked = 0
    for path, method, op, _ in operations(doc):
        if path.startswith("webhooks:"):
            continue
        url, codes = _concrete(path.removeprefix("paths:")), set(op["responses"])
        attempts = [
            (open_api, {"Origin": "https://evil.example"}, None, 403),
            (open_api, {"Host": "rebind.example"}, None, 421),
            (with_token, {}, None, 401),
        ]
        if "requestBody" in op:
            attempts += [
                (open_api, {"Content-Type": "text/plain"}, b"{}", 415),
                (open_api, {"Content-Type": JSON}, json.dumps(big).encode(), 413),
            ]
            assert "408" in codes, (method, path)  # tests/test_security_body.py sends one
        for client, headers, body, status in attempts:
            resp = await client.request(method, url, headers=headers, data=body)
            refused = resp.status == status
            assert refused == (str(status) in codes), (method, path, status, resp.status)
            if refused:
                assert resp.content_type == PROBLEM_TYPE
                checked += 1
    assert checked > 60


def test_the_webhooks_entry_describes_the_request_timerd_sends() -> None:
    doc = openapi_document()
    (name,) = doc["webhooks"]
    hook = doc["webhooks"][name]["post"]
    assert "requestBody" not in hook  # the body is empty...
    headers = {p["name"]: p for p in hook["parameters"]}
    assert headers["Content-Length"]["schema"]["const"] == "0"  # ...and says so
    assert {p["in"] for p in hook["parameters"]} == {"header"}
    assert set(headers) == {
        "User-Agent",
        "Content-Length",
        "Timerd-Fire-At",
        "Timerd-Attempt",
        "Timerd-Node",
        *SIGNATURE_HEADERS,
    }
    for header in SIGNATURE_HEADERS:
        assert not headers[header]["required"]
        assert "signing_secret" in headers[header]["description"]
    assert "POST <url>/<id>" in hook["description"]
    assert "https://a.example/hook/<id>?k=v" in hook["description"]  # the URL rule
    assert "empty body" in hook["description"]
    assert set(hook["responses"]) == {"2XX", "default"}
    example = {h: headers[h]["example"] for h in SIGNATURE_HEADERS}
    expected = sign(parse_secret(EXAMPLE_SECRET), example["webhook-id"], 1800000000)
    assert example["webhook-signature"] == expected
    assert example["webhook-timestamp"] == "1800000000"


async def test_a_real_signed_webhook_is_what_the_entry_documents(
    make_api: Callable[..., Awaitable[Client]], receiver: Receiver
) -> None:
    client = await make_api(signing_secret=EXAMPLE_SECRET)
    resp = await client.post("/timers", json={"seconds": 0, "url": receiver.url})
    assert resp.status == 201
    (hit,) = await receiver.wait_for(1)
    hook = next(iter(openapi_document()["webhooks"].values()))["post"]
    documented = {p["name"].lower(): p for p in hook["parameters"]}
    sent = {name.lower(): value for name, value in hit.headers.items()}
    sent.pop("host")  # the URL's host, as in any request
    assert set(sent) - set(documented) == set(), "headers timerd sends but does not document"
    for name, param in documented.items():
        if param["required"] or name.startswith("webhook-"):
            assert name in sent, name
        if name in sent:
            errors = list(Draft202012Validator(param["schema"]).iter_errors(sent[name]))
            assert not errors, (name, sent[name], errors)
    assert hit.method == "POST"
    assert hit.body == b""
    timer_id = sent["webhook-id"]
    assert hit.path == f"/hook/{timer_id}"
    key = parse_secret(EXAMPLE_SECRET)
    assert sent["webhook-signature"] == sign(key, timer_id, int(sent["webhook-timestamp"]))
