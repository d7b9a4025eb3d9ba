"""HTTP: the aiohttp app, its JSON API and OpenAPI document, ingest (JSON batches, pings,
OTLP), authentication, artifacts and the HTML pages.

Handlers stay thin: parse, validate, call the service or the domain, serialise. This is the
top layer under the entry points; nothing below it imports it.
"""
