#!/usr/bin/env bash
# Checks a .deb built by build-deb.sh (CI runs it): prints dpkg-deb -I and
# -c, checks that it holds what a school server needs, that its binary
# reports the package's version, and that its unit passes systemd-analyze
# verify and an exposure check. Usage: packaging/check-deb.sh DEB
set -euo pipefail
deb=$1
fail() { echo "check-deb: $deb: $*" >&2; exit 1; }

echo "-- dpkg-deb -I $deb"
dpkg-deb -I "$deb"
echo "-- dpkg-deb -c $deb"
listing=$(dpkg-deb -c "$deb")
echo "$listing"

[ "$(dpkg-deb -f "$deb" Package)" = allmende ] || fail "Package is not allmende"
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
case "$(basename "$deb")" in
"allmende_${version}_${arch}.deb") ;;
*) fail "file name does not say allmende_${version}_${arch}.deb" ;;
esac

# has MODE PATH: the listing holds PATH with permissions MODE.
has() {
	echo "$listing" | awk -v m="$1" -v p="./$2" '$1 == m && $6 == p { found = 1 } END { exit !found }' ||
		fail "lacks $2 with mode $1"
}
has -rwxr-xr-x usr/bin/allmende
has -rw-r--r-- usr/lib/systemd/system/allmende.service
has -rw-r--r-- etc/allmende/config.yaml
has -rw-r--r-- usr/share/doc/allmende/examples/school-mirror.yaml
has -rw-r--r-- usr/share/doc/allmende/examples/seed-server.yaml
has -rw-r--r-- usr/share/bash-completion/completions/allmende
for page in allmende allmende-daemon allmende-fetch allmende-version allmende-completion; do
	has -rw-r--r-- "usr/share/man/man1/$page.1.gz"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/allmende/config.yaml || fail "/etc/allmende/config.yaml is not a conffile"
dpkg-deb -I "$deb" postinst | grep -q 'adduser --system' || fail "postinst creates no system user"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
unit="$root/usr/lib/systemd/system/allmende.service"
for directive in User=allmende StateDirectory=allmende ProtectSystem=strict ProtectHome=yes \
	NoNewPrivileges=yes PrivateTmp=yes CapabilityBoundingSet= RestrictAddressFamilies= \
	Environment=ALLMENDE_HOME=/var/lib/allmende; do
	grep -q "^$directive" "$unit" || fail "allmende.service lacks $directive"
done

if [ "$arch" = "$(go env GOARCH)" ]; then
	got=$("$root/usr/bin/allmende" version --json | sed -n 's/^  "version": "\(.*\)",$/\1/p')
	[ "$got" = "$version" ] || fail "allmende version says $got, the package $version"
	gunzip -c "$root/usr/share/man/man1/allmende-daemon.1.gz" | grep -q '^\.TH "ALLMENDE"' || fail "allmende-daemon.1 is not a man page"
fi

# systemd-analyze verify checks that ExecStart is an executable and that
# the Documentation= man pages exist, on this machine; point both at the
# extracted package instead of installing it.
echo "-- systemd-analyze verify allmende.service"
sed "s|/usr/bin/allmende|$root/usr/bin/allmende|g" "$unit" >"$root/allmende.service"
MANPATH="$root/usr/share/man" systemd-analyze verify "$root/allmende.service"
echo "-- systemd-analyze security --offline=yes allmende.service"
systemd-analyze security --offline=yes --threshold=30 "$root/allmende.service" | tail -1
echo "check-deb: $deb: ok"
