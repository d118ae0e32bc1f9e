#!/bin/sh
# Entry point of the agent containers (installed as /usr/local/bin/skiff-agent-entrypoint).
# Docker mounts /proc/sys read-only in a container that is not `privileged`, but the agent
# turns on net.ipv4.ip_forward in the container's network namespace (its pods' traffic is
# routed through it). With CAP_SYS_ADMIN, remount it writable, then run the command.
f=/proc/sys/net/ipv4/ip_forward
# (`test -w` is always true for root; only a write tells. Writing the value back changes nothing.)
if ! echo "$(cat $f)" 2>/dev/null > $f; then
  mount -o remount,rw /proc/sys ||
    echo "skiff-agent-entrypoint: /proc/sys is read-only and cannot be remounted (needs CAP_SYS_ADMIN)" >&2
fi
exec "$@"
