#!/bin/sh
# Debian prerm of allmende: stop the service before its binary goes.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now allmende.service >/dev/null 2>&1 || true
fi
exit 0
