"""The HTTP API: routes and handlers, middleware (Host/Origin, auth, body deadline,
problem+json), the OpenAPI document, and the status and docs pages with their static files.

It turns requests into calls of the timer service and answers; no SQL, heap or delivery here.
"""
