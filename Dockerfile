# syntax=docker/dockerfile:1
#
# tollgate container image.
#
#   docker build -t tollgate .
#   docker run --read-only -v tollgate-data:/data -p 127.0.0.1:8080:8080 \
#       -e BLNK_URL=http://blnk:5001 -e BLNK_API_KEY=... -e OPENAI_API_KEY=... tollgate
#
# The image runs as uid 10001 and writes only to /data (the outbox database), so it works
# with a read-only root filesystem. The shipped price file is /etc/tollgate/pricing.toml;
# mount another file over it to change prices.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between builds, so a
# change to tollgate's own code recompiles only tollgate. The binary is copied out of the
# cached target directory in the same step, because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tollgate \
    && install -D -m 0755 target/release/tollgate /out/tollgate

FROM debian:bookworm-slim AS runtime
# ca-certificates: the upstream API is reached over TLS, verified against the system roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 tollgate \
    && useradd --system --uid 10001 --gid tollgate --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin tollgate \
    && install -d -o tollgate -g tollgate -m 0750 /data

COPY --from=builder /out/tollgate /usr/local/bin/tollgate
COPY pricing.toml /etc/tollgate/pricing.toml

# Asks the admin listener for GET /healthz over bash's /dev/tcp, because the slim image has
# no HTTP client. It reads the port from TOLLGATE_ADMIN_LISTEN.
COPY --chmod=0755 <<'EOF' /usr/local/bin/tollgate-healthcheck
#!/bin/bash
set -euo pipefail
port="${TOLLGATE_ADMIN_LISTEN##*:}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
read -r -t 2 status_line <&3
case "$status_line" in
    "HTTP/1."?" 200 "*) exit 0 ;;
    *) echo "unhealthy: GET /healthz answered: ${status_line}" >&2; exit 1 ;;
esac
EOF

# Inside a container the listeners bind to every interface; publish the proxy port only where
# the application that sets X-Customer-Id can reach it, because tollgate trusts that header.
# SQLITE_TMPDIR keeps SQLite's temporary files on /data, the only writable path.
ENV TOLLGATE_LISTEN=0.0.0.0:8080 \
    TOLLGATE_ADMIN_LISTEN=0.0.0.0:9090 \
    TOLLGATE_DATA_DIR=/data \
    TOLLGATE_PRICING=/etc/tollgate/pricing.toml \
    SQLITE_TMPDIR=/data

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/tollgate-healthcheck"]
ENTRYPOINT ["tollgate"]
CMD ["serve"]
