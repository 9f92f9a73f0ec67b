# session-exporter container image.
#
#   docker build -t session-exporter .
#   docker run --rm -p 9786:9786 session-exporter --demo          # built-in simulators
#   docker run --rm -p 9786:9786 \
#     -v "$PWD/config.yaml:/etc/session-exporter/config.yaml:ro" \
#     -e GLANCE_API_KEY -v "$PWD/secrets:/run/secrets:ro" session-exporter
#
# The entrypoint listens on :9786 (all interfaces of the container, --demo included) and reads
# /etc/session-exporter/config.yaml; later flags override both. Secrets come from the
# environment (${VAR} in the config) or from files (api_key_file: /run/secrets/...).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/session-exporter
COPY . .
# Every dependency has a manylinux wheel: no compiler is needed, and none reaches the image.
RUN /opt/session-exporter/bin/pip install --no-cache-dir . \
    && /opt/session-exporter/bin/session-exporter --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="session-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Glance, SecureVideo and LogMeIn Rescue sessions" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/session-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:9786/-/healthy
RUN useradd --system --no-log-init --no-create-home --uid 10001 --user-group \
        --home-dir /nonexistent --shell /usr/sbin/nologin session-exporter \
    && mkdir -p /etc/session-exporter
COPY --from=build /opt/session-exporter /opt/session-exporter
COPY deploy/docker/healthcheck.py /usr/local/lib/session-exporter/healthcheck.py
USER 10001:10001
EXPOSE 9786
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "/usr/local/lib/session-exporter/healthcheck.py"]
ENTRYPOINT ["session-exporter", "--web.listen-address=:9786", "--config.file=/etc/session-exporter/config.yaml"]
CMD []
