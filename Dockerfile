# TuneLink server image: dependencies built once and cached (cargo-chef), the server built
# in a full Rust image, run in a slim Debian.
FROM rust:1.95-slim-bookworm AS chef
RUN cargo install --locked cargo-chef@0.1.78
WORKDIR /src

# The dependency graph only: changes when Cargo.toml or Cargo.lock do.
FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
# The checked SQL macros read the committed `.sqlx/` data: no database at build time.
ENV SQLX_OFFLINE=true
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
# The commit, for `tunelink_build_info` (`docker compose build --build-arg
# TUNELINK_REVISION=$(git rev-parse HEAD)`); set late, so the dependency layer stays cached.
ARG TUNELINK_REVISION=unknown
RUN cargo build --release --locked --bin tunelink \
 && cp target/release/tunelink /usr/local/bin/tunelink

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 tunelink
COPY --from=build /usr/local/bin/tunelink /usr/local/bin/tunelink
USER tunelink
ENV BIND_ADDR=0.0.0.0:8080 APP_ENV=production
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/tunelink"]
