#!/bin/sh
# Debian postinst of allmende: the system user the service runs as, then
# systemd learns about the unit. The service is not enabled or started
# here: the admin does that (systemctl enable --now allmende) after
# choosing a config. An upgrade restarts a running service.
set -e
if [ "$1" = configure ]; then
	if ! getent passwd allmende >/dev/null; then
		adduser --system --group --home /var/lib/allmende --no-create-home allmende >/dev/null
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			systemctl try-restart allmende.service >/dev/null || true
		fi
	fi
fi
exit 0
