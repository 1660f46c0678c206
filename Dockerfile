# syntax=docker/dockerfile:1
# ShopRank API and indexer image (docs/serving.md, "Container image").
#   docker build -t shoprank:latest .
# Stage 1 installs the serving dependencies (no torch: training stays outside the image) into a
# virtual environment; stage 2 copies only that environment and the vendored catalogue onto a
# slim base and runs as an unprivileged user. Models are NOT baked in: /models is the same
# model repository Triton serves (tokenizer.json and shoprank.json are read from it).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY indexer ./indexer
COPY training ./training
RUN pip install . && pip check

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin shoprank \
    && mkdir -p /var/lib/shoprank /models \
    && chown shoprank:shoprank /var/lib/shoprank
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=shoprank:shoprank data ./data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SHOPRANK_HOST=0.0.0.0 \
    SHOPRANK_PORT=8080 \
    SHOPRANK_MODEL_REPO=/models \
    SHOPRANK_DATA_DIR=/app/data \
    SHOPRANK_STATE_DIR=/var/lib/shoprank \
    SHOPRANK_LOG_FORMAT=json
USER shoprank
EXPOSE 8080
VOLUME ["/var/lib/shoprank"]
# /healthz answers as soon as the process is up (readiness is /readyz); the start period covers start-up.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('SHOPRANK_PORT', '8080')}/healthz\", timeout=2)"]
CMD ["shoprank", "serve"]
