#!/bin/sh
# Debian postrm of allmende: on purge, forget the unit. The store in
# /var/lib/allmende and the user allmende stay (the store may hold
# terabytes of models); remove them by hand if you mean to.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
