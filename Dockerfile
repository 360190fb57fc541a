# syntax=docker/dockerfile:1
#
# The controller's container image: the release binary on a distroless base that has glibc,
# libgcc and CA certificates and nothing else, running as the unprivileged user 65532.
#
#   docker build -t jit-groups-controller .
#
# The cache mounts keep the crates and the build tree between builds; they need BuildKit,
# which is Docker's default builder.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin jit-groups-controller \
    && cp target/release/jit-groups-controller /jit-groups-controller

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="jit-groups-controller" \
      org.opencontainers.image.description="Just-in-time, time-bound access to Google Cloud through JIT groups, driven by Kubernetes resources" \
      org.opencontainers.image.source="https://github.com/jit-groups-controller/jit-groups-controller" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /jit-groups-controller /jit-groups-controller
# Numeric, so that the kubelet can check runAsNonRoot against the image.
USER 65532:65532
# /metrics, /healthz and /readyz; the admission webhooks when `--webhook-address` is given.
EXPOSE 8080 9443
# The signal that container runtimes send to stop the container; `jit-groups-controller run`
# shuts down gracefully on it.
STOPSIGNAL SIGINT
ENTRYPOINT ["/jit-groups-controller"]
CMD ["run"]
