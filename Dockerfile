# Ledgerline: one image for every service; the command chooses which one runs.
#   docker build -t ledgerline:0.1.0 .
#   docker run ledgerline:0.1.0 gateway        (or delivery | projections | tickets | relay | migrate)
# Configuration: LEDGERLINE_* environment variables only (docs/configuration.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: install the package and its pinned dependencies into a self-contained venv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/ledgerline
WORKDIR /src
# Dependencies first (cached while only the code changes): the runtime dependencies of pyproject.toml
# (not the dev tools), at exactly the versions of requirements.lock.
COPY requirements.lock pyproject.toml README.md ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/runtime-requirements.txt \
    && /opt/ledgerline/bin/pip install -c requirements.lock -r /tmp/runtime-requirements.txt
COPY shared ./shared
COPY services ./services
# Not editable: the venv holds the code, so the runtime stage needs nothing from /src.
RUN /opt/ledgerline/bin/pip install --no-deps -c requirements.lock . \
    && /opt/ledgerline/bin/python -m compileall -q /opt/ledgerline/lib

# ---- runtime: the venv, the health check, a user without privileges ----
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ledgerline" \
      org.opencontainers.image.description="Event-sourced on-premise messaging backend (chat, support desk, audit)"
ENV PATH=/opt/ledgerline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEDGERLINE_DATA_DIR=/var/lib/ledgerline \
    LEDGERLINE_FILES_DIR=/var/lib/ledgerline/files \
    LEDGERLINE_GATEWAY_HOST=0.0.0.0 \
    LEDGERLINE_WORKER_HOST=0.0.0.0 \
    LEDGERLINE_LOG_FORMAT=json
RUN groupadd --system --gid 10001 ledgerline \
    && useradd --system --uid 10001 --gid ledgerline --home-dir /var/lib/ledgerline --shell /usr/sbin/nologin ledgerline \
    && mkdir -p /var/lib/ledgerline/files \
    && chown -R ledgerline:ledgerline /var/lib/ledgerline
COPY --from=build /opt/ledgerline /opt/ledgerline
COPY deploy/docker/healthcheck.py /usr/local/lib/ledgerline-healthcheck.py
WORKDIR /var/lib/ledgerline
USER 10001:10001
# The gateway's HTTP port; workers serve /healthz, /readyz, /metrics on 9100.
EXPOSE 8080 9100
VOLUME ["/var/lib/ledgerline"]
# /healthz of the running service (the port depends on the command; see the script).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/ledgerline-healthcheck.py"]
# SIGTERM is the graceful stop of every service (LEDGERLINE_SHUTDOWN_TIMEOUT, default 10 s);
# give containers a stop timeout above it (compose stop_grace_period, k8s terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ledgerline"]
CMD ["gateway"]
