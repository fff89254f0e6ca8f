#!/usr/bin/env bash
# Pushes a tiny Ollama-shaped model to an OCI registry with oras, the way a
# test upstream is filled for the mirror's OCI tests (issue 17):
#
#   push-ollama.sh [--oci] REGISTRY NAME:TAG WORKDIR
#
#   REGISTRY  host:port of a plain-http registry on loopback, e.g. the one
#             `crane registry serve --address 127.0.0.1:0` prints
#   NAME:TAG  e.g. library/tiny:latest
#   WORKDIR   an empty directory for the model's files (left for the caller)
#
# The model: a small valid GGUF (header and metadata, no tensors) as the
# application/vnd.ollama.image.model layer, a template, a params and a
# license layer, and a config blob of Docker's config type, as Ollama's
# registry serves them. By default the manifest is a Docker image manifest
# v2 (what `ollama pull` asks for, pushed with `oras manifest push
# --media-type`); with --oci it is what `oras push` makes, an OCI image
# manifest. Each layer carries an org.opencontainers.image.title annotation
# so `oras pull` writes it as a file (Ollama ignores annotations).
#
# Needs: oras on PATH or in $ORAS, python3. Prints the manifest digest as
# its last line; WORKDIR/files/ holds the files pushed, WORKDIR/manifest.json
# the manifest.
set -euo pipefail

oci=0
if [ "${1:-}" = "--oci" ]; then
	oci=1
	shift
fi
if [ $# -ne 3 ]; then
	echo "usage: $0 [--oci] REGISTRY NAME:TAG WORKDIR" >&2
	exit 2
fi
registry=$1 ref=$2 work=$3
oras=${ORAS:-oras}
name=${ref%:*}
files=$work/files
mkdir -p "$files"

# A GGUF v3 file with no tensors and three metadata entries, so readers
# (gguf-py, Ollama's fs/ggml) take it for a llama model.
python3 - "$files/model.gguf" <<'EOF'
import struct, sys
def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b
kv = [("general.architecture", 8, s("llama")), ("general.name", 8, s("allmende-tiny")),
      ("llama.context_length", 4, struct.pack("<I", 2048))]
out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv))
for k, t, v in kv:
    out += s(k) + struct.pack("<I", t) + v
open(sys.argv[1], "wb").write(out)
EOF
printf '{{ if .System }}{{ .System }} {{ end }}{{ .Prompt }}' >"$files/template"
printf '{"stop":["<|end|>"],"temperature":0.7}' >"$files/params"
printf 'Test license: do what you like with these bytes.\n' >"$files/license"
printf '{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"0M","file_type":"F32","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$files/config.json"

if [ $oci = 1 ]; then
	(cd "$files" && "$oras" push --plain-http --no-tty \
		--config config.json:application/vnd.docker.container.image.v1+json \
		--export-manifest ../manifest.json \
		"$registry/$ref" \
		model.gguf:application/vnd.ollama.image.model \
		template:application/vnd.ollama.image.template \
		params:application/vnd.ollama.image.params \
		license:application/vnd.ollama.image.license) >&2
else
	for f in config.json model.gguf template params license; do
		"$oras" blob push --plain-http --no-tty "$registry/$name" "$files/$f" >&2
	done
	python3 - "$files" "$work/manifest.json" <<'EOF'
import hashlib, json, os, sys
files, out = sys.argv[1], sys.argv[2]
def desc(f, mt, title=True):
    b = open(os.path.join(files, f), "rb").read()
    d = {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b)}
    if title:
        d["annotations"] = {"org.opencontainers.image.title": f}
    return d
m = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
     "config": desc("config.json", "application/vnd.docker.container.image.v1+json", False),
     "layers": [desc("model.gguf", "application/vnd.ollama.image.model"),
                desc("template", "application/vnd.ollama.image.template"),
                desc("params", "application/vnd.ollama.image.params"),
                desc("license", "application/vnd.ollama.image.license")]}
open(out, "w").write(json.dumps(m, separators=(",", ":")))
EOF
	"$oras" manifest push --plain-http \
		--media-type application/vnd.docker.distribution.manifest.v2+json \
		"$registry/$ref" "$work/manifest.json" >&2
fi
echo "sha256:$(sha256sum "$work/manifest.json" | cut -d' ' -f1)"
