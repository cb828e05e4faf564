# stripe-consumer image: small, non-root, read-only root file system friendly.
# Build: docker build -t stripe-consumer .   Run: docker run --env-file ... stripe-consumer
# The base must offer `python` and `pip` (a Python 3.11+) and `useradd` on the PATH:
# python:3.11-slim by default; `--build-arg BASE_IMAGE=...` for a mirror or a locally built
# base (deploy/local/images.py builds one from Debian's packages where no registry answers).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml constraints.txt ./
# Wheels for the service's pinned runtime dependencies only (no dev tools in the image), in
# layers that only pyproject.toml and constraints.txt change: editing the code or the README
# rebuilds just the service's own wheel.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels/deps -c constraints.txt -r requirements.txt
COPY README.md ./
COPY consumer ./consumer
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/service .

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin stripe-consumer
COPY --from=build /wheels/deps /wheels/deps
RUN pip install --no-cache-dir --no-index /wheels/deps/*.whl && rm -rf /wheels
COPY --from=build /wheels/service /wheels/service
RUN pip install --no-cache-dir --no-index --no-deps /wheels/service/*.whl && rm -rf /wheels
# No .pyc writes (read-only root), unbuffered logs, metrics/health on all interfaces.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONSUMER_HTTP_HOST=0.0.0.0 \
    CONSUMER_HTTP_PORT=8000
USER 10001:10001
EXPOSE 8000
# Exec form: the Python process is PID 1's child-free target, so SIGTERM reaches it directly
# and the service drains within CONSUMER_SHUTDOWN_GRACE_SECONDS.
ENTRYPOINT ["python", "-m", "consumer"]
CMD ["run"]
