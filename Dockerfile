# syntax=docker/dockerfile:1
# Build: docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse --short HEAD) -t subsyncd .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=none
# The same build as `make build`.
RUN make build VERSION="${VERSION}" COMMIT="${COMMIT}"

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/subsyncd /usr/local/bin/subsyncd
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["subsyncd"]
CMD ["serve"]
