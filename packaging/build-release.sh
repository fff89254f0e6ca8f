#!/usr/bin/env bash
# Builds release archives of allmende for every machine a room has:
#   dist/allmende_<version>_linux_amd64.tar.gz    school servers, PCs
#   dist/allmende_<version>_linux_arm64.tar.gz    Raspberry Pi 4/5 (64-bit OS)
#   dist/allmende_<version>_darwin_arm64.tar.gz   Macs with Apple silicon
#   dist/allmende_<version>_windows_amd64.zip     Windows laptops
# Each holds the binary (static, CGO_ENABLED=0), README.md, the example
# configs, and for Linux and macOS the man pages and shell completions.
# Usage: packaging/build-release.sh [GOOS/GOARCH...]   (default: the four)
# VERSION overrides the version (see packaging/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(linux/amd64 linux/arm64 darwin/arm64 windows/amd64)

mkdir -p dist
docs=$(mktemp -d)
trap 'rm -rf "$docs"' EXIT
build_docs "$docs"

for target in "${targets[@]}"; do
	goos=${target%/*} goarch=${target#*/}
	name="allmende_${VERSION}_${goos}_${goarch}"
	stage="$docs/$name"
	mkdir -p "$stage/examples"
	exe=allmende
	[ "$goos" = windows ] && exe=allmende.exe
	build_binary "$goos" "$goarch" "$stage/$exe"
	cp README.md "$stage/"
	cp configs/school-mirror.yaml configs/seed-server.yaml "$stage/examples/"
	if [ "$goos" = windows ]; then
		rm -f "dist/$name.zip"
		(cd "$docs" && find "$name" -exec touch -d "@$SOURCE_DATE_EPOCH" {} + &&
			zip -qrX "$OLDPWD/dist/$name.zip" "$name")
		echo "dist/$name.zip"
	else
		mkdir -p "$stage/man" && cp -r "$docs/man1" "$stage/man/"
		cp -r "$docs/completions" "$stage/"
		tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
			-C "$docs" -czf "dist/$name.tar.gz" "$name"
		echo "dist/$name.tar.gz"
	fi
done
