"""The exposition: ``/metrics`` as cached per-job exposition bytes re-rendered only for jobs
that changed (``cache.py``), their text format (``text.py``), and the sidecar's own metrics
(``selfmetrics.py``). Reads the store and the domain; imports nothing of HTTP or the service.
"""
