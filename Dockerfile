# syntax=docker/dockerfile:1
#
# thanos-bridge container image: one `deno compile`d executable on a minimal glibc base.
#
#   docker build -t thanos-bridge:0.1.0 .
#   docker build --build-arg ALLOW_NET=observability-thanos-query.open-cluster-management-observability.svc:9090,kubernetes.default.svc:443,s3.example.com:443,kafka-0.example.com:9093,0.0.0.0:8080 -t thanos-bridge:0.1.0-scoped .
#
# Not built in CI (no container engine there); tests/dockerfile_test.ts checks these rules.
#
# Runs as a non-root user (65532) with a read-only root filesystem: the only writable path is the
# state volume at /var/lib/thanos-bridge (state/ with its .spool/ and outbox/, and out/ for the dir
# sink). Configuration comes from /etc/thanos-bridge/config.yaml, secrets as files under
# /etc/thanos-bridge/ (mounted read-only), the service account token under /var/run/secrets/.
#
# Health: no HEALTHCHECK instruction (Kubernetes ignores it, and the base image has no shell or
# curl). Kubernetes probes the HTTP API instead: liveness/startup GET /healthz, readiness
# GET /readyz on port 8080 (the Helm chart charts/thanos-bridge sets all three).
#
# Permissions baked into the executable (a compiled Deno program cannot be given more at run time).
# They narrow src/cli/runtime_flags.ts (the same flags, scoped to the image's paths):
#   --allow-net[=ALLOW_NET]   Thanos Query (src/thanos, fetch), S3 (@aws-sdk/client-s3,
#                             @aws-sdk/lib-storage, @aws-sdk/s3-request-presigner), Kafka (kafkajs,
#                             node:net/node:tls), ingress (fetch), the Kubernetes API (acm
#                             discovery), koku's sources API, and listening on the API port (hono
#                             over Deno.serve). The hosts are site-specific, so the default is
#                             unscoped; ALLOW_NET=host:port,… scopes it for one hub (include the
#                             listen address, e.g. 0.0.0.0:8080).
#   --allow-read=…            /etc/thanos-bridge (config file via yaml + zod, token/password/CA/
#                             key files, org map, identity file), /var/run/secrets (service
#                             account token and CA for acm discovery), /var/lib/thanos-bridge
#                             (state and spool: fragments, records, outbox; tar-stream reads
#                             spooled tarballs; also HOME, so the AWS SDK's ~/.aws lookup stays in
#                             scope).
#   --allow-write=…           /var/lib/thanos-bridge only (state, .spool, outbox, runs, out/).
#   --allow-env               unscoped: the CLI reads the whole environment once
#                             (Deno.env.toObject() for THANOS_BRIDGE_*), and the AWS SDK and
#                             kafkajs read process.env (AWS_*, HOME, …), which Deno checks per
#                             name; a scoped list makes both throw NotCapable.
#   --allow-sys=osRelease,hostname
#                             the AWS SDK's user agent reads the OS release; the cluster lock
#                             records the host name.
#   --no-code-cache           no V8 code cache: ~4 MiB less resident memory, no cache file written.
#   --v8-flags=…              512 MiB heap, 4 MiB young generation, old generation grown to
#                             1.25× its live data, freed pages returned at once (override: DENO_V8_FLAGS).
#   Not granted: --allow-run (no subprocesses), --allow-ffi, --allow-import (static imports only),
#   --allow-all. prom-client's process metrics are off because /proc is not readable.

ARG DENO_VERSION=2.9.6

# OpenShift runs the image with an arbitrary UID in group 0, so group 0 owns the state folder and
# may write it (chmod g=u).

# --- build ------------------------------------------------------------------------------------------
FROM denoland/deno:${DENO_VERSION} AS build
WORKDIR /src
# Dependencies first (a layer that changes only with deno.json/deno.lock), exactly as locked.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY src/ ./src/
ARG ALLOW_NET=""
RUN set -eu; \
    net="--allow-net"; \
    if [ -n "${ALLOW_NET}" ]; then net="--allow-net=${ALLOW_NET}"; fi; \
    deno compile --frozen --no-prompt \
      "${net}" \
      --allow-read=/etc/thanos-bridge,/var/run/secrets,/var/lib/thanos-bridge \
      --allow-write=/var/lib/thanos-bridge \
      --allow-env \
      --allow-sys=osRelease,hostname \
      --no-code-cache \
      --v8-flags=--max-old-space-size=512,--max-semi-space-size=4,--heap-growing-percent=25,--memory-pool-timeout=0,--no-large-page-pool \
      --output /out/thanos-bridge src/cli/main.ts; \
    /out/thanos-bridge --version; \
    mkdir -p /out/root/var/lib/thanos-bridge/state /out/root/var/lib/thanos-bridge/out \
      /out/root/etc/thanos-bridge; \
    chown -R 65532:0 /out/root/var/lib/thanos-bridge; \
    chmod -R g=u /out/root/var/lib/thanos-bridge

# --- runtime ----------------------------------------------------------------------------------------
# distroless cc: glibc + libgcc_s (what the Deno runtime links), CA certificates, no shell, no
# package manager; the :nonroot tag runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="thanos-bridge" \
      org.opencontainers.image.description="Collects cost-management metrics per managed cluster from Thanos Query on a Red Hat ACM hub and ships koku payloads" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot" \
      io.k8s.description="Runs cost-management queries per cluster against Thanos Query and delivers koku payloads" \
      io.openshift.non-scalable="true"
COPY --from=build --chown=65532:0 /out/root/ /
COPY --from=build --chmod=0555 /out/thanos-bridge /usr/local/bin/thanos-bridge
# glibc's malloc: two arenas instead of one per thread, and blocks of 256 KiB or more mapped on their
# own, so freed sample buffers go back to the system at once (the 2,000-pod bench day in local mode:
# peak RSS 236–241 instead of 242–250 MiB, three alternating runs each, wall unchanged). Only the
# environment can set them: they are read when the process starts.
ENV HOME=/var/lib/thanos-bridge \
    DENO_NO_UPDATE_CHECK=1 \
    NO_COLOR=1 \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=262144
WORKDIR /var/lib/thanos-bridge
USER 65532:0
VOLUME ["/var/lib/thanos-bridge"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/thanos-bridge"]
CMD ["serve", "--config", "/etc/thanos-bridge/config.yaml"]
