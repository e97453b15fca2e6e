# syntax=docker/dockerfile:1
# Backchannel's image: the wheel is built in one stage and installed into a virtual environment
# in another; the runtime copies that environment and runs as an unprivileged user.
#
#   docker build -t backchannel .
#   docker run -p 8000:8000 -e DATABASE_URL=... -e REDIS_URL=... -e JWT_SECRETS=... backchannel
#
# docker-compose.yml runs two replicas of it behind HAProxy (deploy/haproxy.cfg);
# tests/test_topology.py runs this file's CMD and HEALTHCHECK as plain processes, so keep both in
# exec (JSON) form.

FROM python:3.11-slim AS wheel
WORKDIR /src
RUN pip install --no-cache-dir build
COPY pyproject.toml README.md ./
COPY server/ server/
COPY client/ client/
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim AS install
RUN python -m venv /opt/backchannel
COPY --from=wheel /dist/ /dist/
RUN /opt/backchannel/bin/pip install --no-cache-dir /dist/*.whl

FROM python:3.11-slim
ENV PATH=/opt/backchannel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/var/lib/backchannel
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /var/lib/backchannel \
        backchannel
COPY --from=install /opt/backchannel /opt/backchannel
USER backchannel
WORKDIR /var/lib/backchannel
EXPOSE 8000
# Ready: PostgreSQL answers and the Redis bus is connected (503 otherwise). The image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["backchannel", "serve"]
