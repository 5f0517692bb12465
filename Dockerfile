# One image for the whole fleet: the five workers, the lifecycle process
# (onboard-lifecycle), the lag exporter (onboard-lag-exporter), onboardctl and
# awssim. The command chooses what runs, e.g.
#   docker run IMAGE onboard-bucket
#   docker run IMAGE onboard-lifecycle
#   docker run IMAGE onboardctl dlq list
#   docker run IMAGE awssim --bind 0.0.0.0 --port 4566
# There is no ENTRYPOINT and no shell wrapper: the program is PID 1 and gets
# SIGTERM itself (the workers drain for up to 20 s on SIGTERM; onboard-lifecycle
# hands its lease to a standby).
#
#   docker build -t onboard:dev .

# Debian 13: its librdkafka (2.8) and hiredis (1.2, with hiredis_ssl) are the
# versions the fleet needs (see the README); on Debian 12 scripts/deps.sh
# builds the same versions from these sources instead.
ARG DEBIAN_RELEASE=13

############################ builder ############################
FROM debian:${DEBIAN_RELEASE} AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libcurl4-openssl-dev libssl-dev libjansson-dev libhiredis-dev zlib1g-dev \
      libjemalloc-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY CMakeLists.txt ./
COPY lib/ lib/
COPY proto/ proto/
COPY workers/ workers/
COPY sim/ sim/
COPY tools/ tools/
# Tests are not built into the image (scripts/test.sh runs them); without them
# cmocka is not needed either.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DOB_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && mkdir -p /out \
 && install -m 0755 -s \
      /build/workers/onboard-bucket /build/workers/onboard-cur \
      /build/workers/onboard-iam /build/workers/onboard-connect \
      /build/workers/onboard-verify /build/workers/onboard-lifecycle \
      /build/workers/onboard-lag-exporter \
      /build/tools/onboardctl /build/sim/awssim \
      /out/

############################ runtime ############################
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libcurl4t64 libssl3t64 libjansson4 libhiredis1.1.0 zlib1g libjemalloc2 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 onboard \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin onboard \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/awssim

COPY --from=builder /out/ /usr/local/bin/

LABEL org.opencontainers.image.title="onboard" \
      org.opencontainers.image.description="Kafka worker fleet onboarding AWS accounts to the Billing Engine (workers, onboardctl, awssim)"

# Metrics, /healthz and /readyz when OB_METRICS_PORT is set (9464 in the
# deployments); awssim listens on 4566 in docker-compose.yml and keeps its
# state (--state-file) in /var/lib/awssim, a volume there.
EXPOSE 9464
USER 10001:10001
WORKDIR /tmp
CMD ["onboard-bucket"]
