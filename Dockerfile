# Builds both binaries; the image runs the worker by default (`agent-worker start`), or the
# token server with `token-server` as the command.
FROM rust:1.89-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libopus-dev pkg-config nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin agent-worker --bin token-server \
    && npm ci --prefix web --no-audit --no-fund

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libopus0 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /app agent
WORKDIR /app
COPY --from=build /src/target/release/agent-worker /src/target/release/token-server /usr/local/bin/
COPY --from=build /src/profiles ./profiles
COPY --from=build /src/web/public ./web/public
COPY --from=build /src/web/node_modules/livekit-client/dist ./web/node_modules/livekit-client/dist
# Call records wait here until n8n has them: mount a volume so they outlive the container. They
# hold personal data, so only the worker's user may enter the spool (the worker warns otherwise).
RUN mkdir -p /app/data/outbox && chmod 700 /app/data/outbox && chown -R agent /app/data
VOLUME /app/data
USER agent
# In a container the health endpoint must be reachable from outside it (orchestrators, load
# balancers); outside containers HEALTH_HOST defaults to loopback.
ENV PROFILES_DIR=/app/profiles WEB_DIR=/app/web HEALTH_HOST=0.0.0.0 HEALTH_PORT=8081 WEB_PORT=3000 SPOOL_DIR=/app/data/outbox
EXPOSE 3000 8081
# The worker's health endpoint; the token server's is GET /health on WEB_PORT.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s CMD curl -fsS http://127.0.0.1:${HEALTH_PORT}/ || exit 1
# docker stop sends SIGTERM: the worker drains its calls (DRAIN_TIMEOUT_SECS) before exiting.
STOPSIGNAL SIGTERM
CMD ["agent-worker", "start"]
