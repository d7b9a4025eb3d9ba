"""The exposition: ``/metrics`` as cached per-job exposition bytes re-rendered only for jobs
that changed (``cache.py``), their text format (``text.py``), the exemplars linking the latest
runs to their traces (``exemplars.py``), which format a scrape asks for (``negotiate.py``), and
the sidecar's own metrics (``selfmetrics.py``). Reads the store and the domain; imports
nothing of HTTP or the service.
"""
