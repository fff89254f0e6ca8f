#!/usr/bin/env bash
# Builds dist/allmende_<version>_<arch>.deb for a school or lab server:
#   /usr/bin/allmende
#   /usr/lib/systemd/system/allmende.service   hardened; runs as user allmende
#   /etc/allmende/config.yaml                  the service's config (conffile)
#   /usr/share/doc/allmende/examples/          school-mirror.yaml, seed-server.yaml
#   /usr/share/man/man1/allmende*.1.gz, shell completions
# Install: dpkg -i dist/allmende_*.deb && systemctl enable --now allmende
# Usage: packaging/build-deb.sh [ARCH]   (amd64 or arm64; default this machine's)
#
# nfpm is run with `go run` at a pinned version: the packager needs no
# install, and its dependencies stay out of allmende's go.mod (and out of
# the module that govulncheck and go mod tidy check).
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
export ARCH=${1:-$(go env GOARCH)}
export STAGE
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

build_binary linux "$ARCH" "$STAGE/allmende"
build_docs "$STAGE"
gzip -9n "$STAGE"/man1/*.1

mkdir -p dist
deb="dist/allmende_${VERSION}_${ARCH}.deb"
rm -f "$deb"
go run "$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$deb" >&2
echo "$deb"
