# anomaly-api: the inference service with its default model baked in.
#
#   docker build -t anomaly-api .                # or: docker compose up --build
#   docker run --rm -p 127.0.0.1:8000:8000 --read-only --tmpfs /tmp anomaly-api
#
# Stage 1 installs the pinned dependencies and the package (non-editable), trains the
# default model deterministically (seeded synthetic data), then prunes what serving does
# not need. Stage 2 copies only the virtualenv and the model onto a fresh base image.
# No BuildKit-only syntax (heredocs, RUN --mount, COPY --chmod): the classic builder and
# buildah build it unchanged.

ARG BASE_IMAGE=python:3.11-slim
# `fast`: the exact fast path in the C kernel compiled below (the default, as on a host).
# `numpy`: the same scores in vectorised NumPy (no compiled kernel needed).
# `sklearn`: plain scikit-learn, the reference.
ARG INFERENCE_BACKEND=fast

FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    ANOMALY_ARTIFACTS_DIR=/opt/anomaly-api/artifacts

# A C compiler for the package's scoring kernel (src/anomaly_api/detection/fast/_kernel.c),
# in this stage only: the runtime stage gets the compiled module, not the compiler.
# python:3.11-slim ships the Python headers; a Debian-packaged Python needs python3-dev.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && if [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; \
    then apt-get install --yes --no-install-recommends python3-dev; fi \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
WORKDIR /build

# The pinned runtime dependencies come straight from pyproject.toml, in a layer of their
# own, so editing the code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && pip install --requirement requirements.txt

COPY README.md setup.py ./
COPY src ./src
RUN pip install --no-deps . \
 && python -c "import anomaly_api.detection.fast.kernel" \
 && rm -rf build src/*.egg-info

# The default model: the same seed and data give the same predictions on every build.
RUN anomaly-api train \
 && test -s "$ANOMALY_ARTIFACTS_DIR/LATEST"

# What serving does not need is pruned here, before the COPY into the runtime stage, so
# its bytes never reach the final image: pandas and pyarrow (training data only), the
# packaging tools, every library's test suite, C/Cython sources, headers and type stubs,
# and all bytecode.
# warmup.py then runs the image's own command against every endpoint and stops it with
# SIGTERM, which both smoke-tests the pruned virtualenv and writes bytecode for exactly
# the modules serving imports.
ARG INFERENCE_BACKEND
COPY deploy/docker/warmup.py /build/warmup.py
RUN pip uninstall --yes pyarrow pandas \
 && pip uninstall --yes pip setuptools \
 && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) -prune -exec rm -rf {} + \
 && find /opt/venv -type f \( -name "*.pyi" -o -name "*.pxd" -o -name "*.pyx" -o -name "*.pxi" \
        -o -name "*.h" -o -name "*.c" -o -name "*.cpp" \) -delete \
 && ANOMALY_INFERENCE_BACKEND="$INFERENCE_BACKEND" python /build/warmup.py


FROM ${BASE_IMAGE} AS runtime

ARG APP_UID=10001
ARG INFERENCE_BACKEND
RUN groupadd --system --gid "${APP_UID}" app \
 && useradd --system --uid "${APP_UID}" --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
# Owned by the service's user: a volume mounted over it starts as a copy it can write to.
COPY --from=build --chown=${APP_UID}:${APP_UID} /opt/anomaly-api/artifacts /opt/anomaly-api/artifacts

# Read-only root filesystem: nothing below writes outside /tmp. Bytecode was compiled at
# build time (warmup.py); HOME/TMPDIR/JOBLIB_TEMP_FOLDER point any library scratch space at /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    JOBLIB_TEMP_FOLDER=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    ANOMALY_ARTIFACTS_DIR=/opt/anomaly-api/artifacts \
    ANOMALY_INFERENCE_BACKEND=${INFERENCE_BACKEND} \
    ANOMALY_HOST=0.0.0.0 \
    ANOMALY_PORT=8000 \
    ANOMALY_LOOP=asyncio

WORKDIR /opt/anomaly-api
USER ${APP_UID}:${APP_UID}
EXPOSE 8000

# uvicorn finishes in-flight requests on SIGTERM; exec-form CMD makes it PID 1, so it
# receives the signal directly.
STOPSIGNAL SIGTERM

# Readiness (model loaded) with the standard library only: urlopen raises on a non-2xx.
# Written without spaces: some engines' Docker-compatible APIs re-split the arguments.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "__import__('urllib.request').request.urlopen('http://127.0.0.1:'+__import__('os').environ.get('ANOMALY_PORT','8000')+'/health/ready',timeout=2)"]

# Worker processes: with REDIS_URL, one per core the container may use (its CPU affinity and
# cgroup quota: `docker run --cpus 2` gives 2), without Redis 1; ANOMALY_WORKERS sets it.
# Each worker holds its own model in memory (docs/operations.md, "Worker processes").
CMD ["anomaly-api", "serve"]
