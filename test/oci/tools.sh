#!/usr/bin/env bash
# Installs the stock OCI clients the tests in test/oci (and the mirror's OCI
# end-to-end tests) drive, all built from the Go module proxy, into DIR:
#
#   test/oci/tools.sh DIR     then: export ALLMENDE_OCI_TOOLS=DIR
#
#   oras    oras.land/oras v1.3.6 (push and pull of OCI artifacts)
#   crane   go-containerregistry v0.22.1 (pull, and `crane registry serve`,
#           an in-memory registry to fill a mirror from)
#   ollama  github.com/ollama/ollama v0.34.4 (the newest the proxy served on
#           2026-12-03; since v0.2x llama.cpp is a separate llama-server
#           binary, so the Go module builds whole; pull and list need
#           nothing else)
#
# A cold run downloads and builds for a few minutes (ollama is most of it);
# with Go's caches warm it takes seconds.
set -euo pipefail
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd)
cd "$dir" # outside any module: go install pkg@version builds it on its own
for pkg in \
	oras.land/oras/cmd/oras@v1.3.6 \
	github.com/google/go-containerregistry/cmd/crane@v0.22.1 \
	github.com/ollama/ollama@v0.34.4; do
	GOBIN=$dir GOFLAGS= go install "$pkg"
done
for tool in oras crane ollama; do
	go version -m "$dir/$tool" | awk -v t="$tool" '$1 == "mod" { print t, $2, $3 }'
done
