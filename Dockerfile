# Small image holding meshdns and meshctl as static binaries.
#   docker build -t meshdns .
#   docker run --rm -p 53:53/udp -p 53:53/tcp meshdns --listen [::]:53 --etcd-endpoints http://etcd:2379
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN OUT=/out scripts/build.sh && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/meshdns /out/meshctl /usr/local/bin/
# The embedded etcd (no --etcd-endpoints) keeps its data here; the image
# runs as the distroless nonroot user (65532), which must own it.
COPY --from=build --chown=65532:65532 /out/data /var/lib/meshdns
WORKDIR /var/lib/meshdns
ENTRYPOINT ["/usr/local/bin/meshdns"]
CMD ["--listen", "[::]:53", "--data-dir", "/var/lib/meshdns"]
