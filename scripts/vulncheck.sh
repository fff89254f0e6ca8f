#!/usr/bin/env bash
# Runs govulncheck on the module (symbol level: a vulnerability counts as
# "called" when a trace reaches it from our code) and fails on what we can
# fix ourselves: a called vulnerability in a required module that has a
# fixed version (go get it). It prints, without failing, called
# vulnerabilities in the Go standard library (the fix is a newer Go
# toolchain: a machine and project decision) and those without any fix.
#
# vuln.go.dev is not reachable from this workplace; the module proxy is, and
# serves the Go vulnerability database as the module golang.org/x/vulndb.
# Its own cmd/indexdb turns the OSV files in it into the database layout
# govulncheck reads with -db file://. Bump VULNDB (go list -m -json
# golang.org/x/vulndb@latest) to see newer reports.
set -euo pipefail
cd "$(dirname "$0")/.."

GOVULNCHECK=golang.org/x/vuln/cmd/govulncheck@v1.9.0
VULNDB=v0.0.0-20261105234957-e22db6528018

db="${XDG_CACHE_HOME:-$HOME/.cache}/allmende/vulndb-$VULNDB"
if [ ! -f "$db/index/db.json" ]; then
	src=$(go mod download -json "golang.org/x/vulndb@$VULNDB" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	tmp=$(mktemp -d)
	go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB" -vulns "$src/data/osv" -out "$tmp/db"
	mkdir -p "$(dirname "$db")"
	rm -rf "$db" && mv "$tmp/db" "$db" && rm -rf "$tmp"
fi

go install "$GOVULNCHECK"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$(go env GOPATH)/bin/govulncheck" -db "file://$db" -format json ./... >"$out"
python3 - "$out" <<'PY'
import json, sys

# govulncheck -format json writes a stream of JSON objects.
text, dec, pos, msgs = open(sys.argv[1]).read(), json.JSONDecoder(), 0, []
while True:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos == len(text):
        break
    msg, pos = dec.raw_decode(text, pos)
    msgs.append(msg)

summary = {m["osv"]["id"]: m["osv"].get("summary", "") for m in msgs if "osv" in m}
levels = {"called": 3, "imported": 2, "required": 1}
found = {}  # (osv, module) -> (level, found version, fixed version)
for m in msgs:
    f = m.get("finding")
    if not f:
        continue
    t = f["trace"][0]
    level = "called" if t.get("function") else "imported" if t.get("package") else "required"
    key = (f["osv"], t.get("module", "?"))
    if levels[level] > levels.get(found.get(key, ("",))[0], 0):
        found[key] = (level, t.get("version", ""), f.get("fixed_version", ""))

fail = 0
for (osv, module), (level, version, fixed) in sorted(found.items(), key=lambda kv: (-levels[kv[1][0]], kv[0])):
    if level == "called" and module != "stdlib" and fixed:
        verdict = "FAIL: go get %s@%s" % (module, fixed)
        fail += 1
    elif level == "called" and module == "stdlib":
        verdict = "warn: needs Go %s" % fixed.lstrip("v")
    elif level == "called":
        verdict = "warn: no fix released"
    else:
        verdict = "ok: not called"
    print("%-8s %-14s %s@%s  %s  [%s]" % (level, osv, module, version, summary.get(osv, "")[:70], verdict))
print("govulncheck: %d finding(s), %d to fix by upgrading a module" % (len(found), fail))
sys.exit(1 if fail else 0)
PY
