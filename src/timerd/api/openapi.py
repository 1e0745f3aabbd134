"""The OpenAPI 3.1 document of the API, written by hand and tested against the router.

Assembled here from its parts: `openapi_paths` (the API's operations), `webui.schema`
(the pages' and their views'), `openapi_responses` (the errors, the guards' added to every
operation they guard), `openapi_bodies` and `openapi_schemas` (the components) and
`openapi_webhooks` (the request timerd sends).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from timerd import __version__
from timerd.api.openapi_bodies import DocumentLimits
from timerd.api.openapi_paths import PATHS, list_limit
from timerd.api.openapi_responses import GUARD_RESPONSES, with_guard_errors
from timerd.api.openapi_schemas import schemas
from timerd.api.openapi_webhooks import webhooks
from timerd.api.webui import is_public_path, ui_paths

__all__ = ["DocumentLimits", "openapi_document"]

_DESCRIPTION = """\
timerd fires HTTP webhooks after a delay: create a timer with a URL and a time, and when it is
due timerd sends `POST <url>/<id>` with an empty body (see **Webhooks** below for exactly what
a receiver gets). Times are epoch seconds unless a field says otherwise.

**Errors** are RFC 9457 `application/problem+json` bodies (`type`, `title`, `status`,
`detail`, and for 422 an `errors` list naming each broken field); no input produces a 5xx.
Every operation lists the statuses it can answer and what each means there.

**Access.** With an API token set (`token`, `token_file`), every request but `/healthz` and
the pages must carry `Authorization: Bearer <token>` (else 401). Without one, only requests
whose `Host` is loopback, timerd's own address or in `allowed_hosts` are answered (else
421). A request with an `Origin` header from another site is 403: timerd grants no CORS.
Request bodies must be `application/json` (else 415), at most `max_body_bytes` (else 413),
and arrive within `request_body_timeout_s` (else 408).
"""


def _with_list_limit(paths: dict[str, Any], limit_max: int) -> dict[str, Any]:
    listing = paths["/timers"]["get"]
    listing = {**listing, "parameters": [*listing["parameters"], list_limit(limit_max)]}
    return {**paths, "/timers": {**paths["/timers"], "get": listing}}


_DEFAULT_LIMITS = DocumentLimits()


@cache
def openapi_document(limits: DocumentLimits = _DEFAULT_LIMITS) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for a daemon with `limits` (built once for each)."""
    paths = _with_list_limit(PATHS, limits.list_limit_max)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "timerd",
            "version": __version__,
            "summary": "Fire HTTP webhooks after a delay.",
            "description": _DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": with_guard_errors({**paths, **ui_paths()}, is_public_path),
        "webhooks": webhooks(),
        # the token is optional: a daemon without one answers every request
        "security": [{"bearer": []}, {}],
        "components": {
            "schemas": schemas(limits, time.time()),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The API token (`token` or `token_file`), when the "
                    "daemon has one; without one, no credentials are needed.",
                }
            },
            "responses": GUARD_RESPONSES,
        },
    }
