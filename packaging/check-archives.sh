#!/usr/bin/env bash
# Checks release archives built by build-release.sh: each holds its
# binary (allmende.exe in a .zip, allmende in a .tar.gz) under
# allmende_<version>_<os>_<arch>/. Usage: packaging/check-archives.sh ARCHIVE...
set -euo pipefail
for archive in "$@"; do
	case "$archive" in
	*.zip) listing=$(unzip -Z1 "$archive") binary=allmende.exe ;;
	*) listing=$(tar -tzf "$archive") binary=allmende ;;
	esac
	grep -qx "allmende_[^/]*/$binary" <<<"$listing" || { echo "$archive lacks $binary" >&2; exit 1; }
	echo "$archive"
done
