# One image for the worker, the simulator and the CLI.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Runtime dependencies only (no test or lint tools), pinned with hashes; the same pins as
# requirements.lock (tests/unit/test_runtime_lock.py checks).
COPY requirements.runtime.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.runtime.lock
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY workers ./workers
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 runctl
USER runctl
ENTRYPOINT ["runctl"]
CMD ["--help"]
