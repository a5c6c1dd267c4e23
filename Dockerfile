# One image for every dispatcher process: the worker, the webhook receiver and the HTTP API
# (compose.yaml starts each with its own command). Secrets come from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The package, installed from this checkout (no editable install, no sources left behind).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dispatcher ./dispatcher
RUN pip install . && cd / && rm -rf /src

# A user of its own: nothing runs as root. Its home is the data folder, where the embedded
# Redis would live if REDIS_URL were unset.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/dispatcher --create-home \
        --shell /usr/sbin/nologin dispatcher \
    && chmod 0700 /var/lib/dispatcher
# The settings template; mount your own over it (compose.yaml does).
COPY config/dispatcher.toml /etc/dispatcher/dispatcher.toml
ENV DISPATCHER_CONFIG=/etc/dispatcher/dispatcher.toml \
    DISPATCHER_DATA_DIR=/var/lib/dispatcher

USER 10001:10001
WORKDIR /var/lib/dispatcher
# webhooks, api, worker metrics and health
EXPOSE 8091 8400 9470
CMD ["python", "-m", "dispatcher", "worker"]
