# The operator image: the operator (entrypoint), the state-migration worker (`hal9-migration
# migrate-state`), the shadow proxy (`hal9-migration shadow-proxy`) and the kubectl plugin
# (`kubectl-hal9`) from one wheel. Slim, non-root, and fit for a read-only root filesystem: nothing
# writes outside /tmp, and no bytecode is written at run time.
#
# No Docker engine runs where this project is developed: CI lints this file (hadolint, `make lint`)
# but does not build it; see the README.

# --- build: the wheel and every dependency into one virtualenv, versions pinned by constraints.txt
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator ./operator
RUN python -m venv /opt/hal9 \
    && /opt/hal9/bin/pip install -c constraints.txt . \
    && /opt/hal9/bin/pip uninstall --yes pip setuptools \
    && /opt/hal9/bin/python -m compileall -q /opt/hal9

# --- run: the virtualenv only; no compiler, no pip, no source tree
FROM python:3.11-slim-bookworm
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="hal9-migration-operator" \
      org.opencontainers.image.description="Kubernetes operator that migrates HAL9 from its flat to its hierarchical architecture, safely" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN python -m pip uninstall --yes pip setuptools wheel \
    && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin hal9
COPY --from=build /opt/hal9 /opt/hal9
ENV PATH=/opt/hal9/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["hal9-migration"]
CMD ["run", "--liveness", "http://0.0.0.0:8080/healthz"]
