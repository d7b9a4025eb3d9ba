# The jobpulse sidecar. Build: docker build -t jobpulse .
# Run:   docker run -p 8484:8484 -e JOBPULSE_INGEST_TOKENS=... -e JOBPULSE_READ_TOKENS=... \
#          -e JOBPULSE_ADMIN_TOKENS=... -v jobpulse-data:/data jobpulse
# BASE: any image with Python 3.11+ and pip (the test suite builds one from Debian packages
# where no image registry is reachable; see tests/e2e/test_image.py).
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1

WORKDIR /app
COPY . /app
RUN pip install ".[sidecar,postgres]" \
    && useradd --system --uid 10001 --home-dir /data jobpulse \
    && mkdir -p /data \
    && chown jobpulse /data

USER jobpulse

# The embedded SQLite store lives on the volume; set JOBPULSE_STORE_URL to a
# postgresql+psycopg:// URL to share one store between replicas. Tokens come from
# JOBPULSE_INGEST_TOKENS, JOBPULSE_READ_TOKENS and JOBPULSE_ADMIN_TOKENS (comma-separated):
# the sidecar refuses a non-loopback address without them.
ENV JOBPULSE_STORE_URL=sqlite:////data/jobpulse.db \
    JOBPULSE_PORT=8484
VOLUME ["/data"]
EXPOSE 8484

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8484/healthz', timeout=4)"]

CMD ["jobpulse", "serve", "--host", "0.0.0.0"]
