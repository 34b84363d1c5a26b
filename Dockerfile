# Roster's container image: built from source, run as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin roster

FROM debian:bookworm-slim
RUN useradd --system --home-dir /var/lib/roster --create-home roster
COPY --from=build /src/target/release/roster /usr/local/bin/roster
USER roster
WORKDIR /var/lib/roster
EXPOSE 8080
ENTRYPOINT ["roster"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/var/lib/roster"]
