# syntax=docker/dockerfile:1
# The Waymark image the Kubernetes manifests (k8s/) and docker-compose.yml run:
#   docker build -t ghcr.io/example/waymark:0.1.0 .
# Stage 1 builds wheels (and may compile); stage 2 holds only the virtualenv and a non-root
# user: no compiler, no pip cache, no sources beyond the installed package.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# Compilers only for a dependency without a wheel for this platform; never in the final image.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/waymark
WORKDIR /src
# Dependencies first (cached while only the code changes), then the package itself.
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY application ./application
COPY infrastructure ./infrastructure
COPY api ./api
COPY workers ./workers
COPY migrations ./migrations
RUN /opt/waymark/bin/pip install --upgrade pip \
    && /opt/waymark/bin/pip install . \
    && /opt/waymark/bin/python -m compileall -q /opt/waymark

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# The uid/gid the manifests' securityContext names (runAsUser: 10001).
RUN groupadd --system --gid 10001 waymark \
    && useradd --system --uid 10001 --gid waymark --home-dir /home/waymark --create-home \
       --shell /usr/sbin/nologin waymark
COPY --from=build /opt/waymark /opt/waymark
ENV PATH=/opt/waymark/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WAYMARK_DATA_DIR=/tmp/waymark
WORKDIR /home/waymark
USER 10001:10001
# 8000: `waymark serve`; 9100: a worker's /health/* and /metrics (WAYMARK_WORKER_PROBE_PORT).
EXPOSE 8000 9100
ENTRYPOINT ["waymark"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
