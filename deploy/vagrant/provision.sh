#!/bin/sh
# Provisions one Skiff host: installs the binaries and a systemd unit, writes the unit's
# environment file (its flags), creates the data dir and starts the daemon.
#
#   provision.sh control-plane --id N --ip IP --peers 1=IP:PORT,2=IP:PORT,3=IP:PORT --token-file FILE [options]
#   provision.sh worker --name NAME --ip IP --servers IP:PORT[,IP:PORT...] [--labels k=v,...] --token-file FILE [options]
#
# Run with --help for the options. Used by deploy/vagrant/Vagrantfile, and exercised by
# tests/tests/provision.rs (with --root and --no-start) so it cannot rot. POSIX sh.
#
# Every argument is checked before anything is written: a bad invocation changes nothing.
# Files written under --root name paths as the provisioned system sees them (the env file
# says /var/lib/skiff/..., not ROOT/var/lib/skiff/...): ROOT is where that system's / is.
set -eu

PROG=provision.sh
# The agent serves logs, exec and port-forward on IP:AGENT_PORT (the control plane proxies).
AGENT_PORT=10250
CP_DATA_DIR=/var/lib/skiff/control-plane
AGENT_DATA_DIR=/var/lib/skiff/agent
NL='
'

usage() {
	cat <<EOF
Usage:
  $PROG control-plane --id N --ip IP --peers 1=IP:PORT,2=IP:PORT,... --token-file FILE [options]
  $PROG worker --name NAME --ip IP --servers IP:PORT[,IP:PORT...] [--labels k=v,...] --token-file FILE [options]

Provisions a Skiff host: installs the binaries into /usr/local/bin, the systemd unit
(skiff-control-plane.service or skiff-agent.service) into /etc/systemd/system, writes its
flags to /etc/skiff/control-plane.env or /etc/skiff/agent.env, creates the data dir under
/var/lib/skiff, and enables and starts the unit. Running it again updates the host
(binaries, unit, flags) and restarts the daemon; data dirs are kept.

control-plane:
  --id N             this member's Raft id (> 0); --peers must name it
  --ip IP            this host's IPv4 address; the member listens on IP:PORT, PORT taken
                     from its own --peers entry, which must be IP:PORT
  --peers LIST       every initial member, ID=HOST:PORT separated by commas
worker (runs skiff-agent):
  --name NAME        the node's name (lowercase DNS subdomain, as in 'skiff get nodes')
  --ip IP            this host's IPv4 address (the agent's --node-ip; it listens on IP:$AGENT_PORT)
  --servers LIST     control-plane endpoints, HOST:PORT separated by commas
  --labels LIST      node labels, KEY=VALUE separated by commas (default: none)
both:
  --token-file FILE  the cluster token (skiff token generate), the same on every host;
                     installed as /etc/skiff/token (mode 0600), which both units read.
                     Needed on the first run; running again keeps the installed one
options:
  --bin-dir DIR      where the built binaries are (default: /vagrant/target/release)
  --units-dir DIR    where the unit files are (default: deploy/systemd beside this script)
  --extra-args ARGS  more daemon flags, e.g. "--heartbeat-interval 1s" (split at whitespace)
  --root DIR         install into DIR instead of / (never starts anything; default: /)
  --no-start         install only; do not run systemctl
  -h, --help         show this text
A worker also gets Debian's runc (for the agent's oci runtime) and busybox-static (the
workloads' toolbox) when apt-get is there.
EOF
}

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	printf "Run '%s --help' for usage.\n" "$PROG" >&2
	exit 2
}

say() {
	printf '%s: %s\n' "$PROG" "$*"
}

# ---- checks (pure) -------------------------------------------------------------------------

is_uint() {
	case $1 in
	'' | *[!0-9]*) return 1 ;;
	esac
}

# A positive integer without leading zeros (sh arithmetic would read 010 as octal).
is_id() {
	case $1 in
	'' | 0* | *[!0-9]*) return 1 ;;
	esac
	[ ${#1} -le 18 ]
}

is_port() {
	is_uint "$1" && [ ${#1} -le 5 ] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

is_ipv4() {
	printf '%s\n' "$1" | grep -Eq '^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$' || return 1
	old_ifs=$IFS
	IFS=.
	# shellcheck disable=SC2086 # split at the dots on purpose
	set -- $1
	IFS=$old_ifs
	for octet in "$@"; do
		[ "$octet" -le 255 ] || return 1
	done
}

# HOST:PORT with a host name or IPv4 address.
is_endpoint() {
	host=${1%:*}
	port=${1##*:}
	[ "$host" != "$1" ] && [ -n "$host" ] && is_port "$port" &&
		printf '%s\n' "$host" | grep -Eq '^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$'
}

is_dns_subdomain() {
	[ ${#1} -le 253 ] &&
		printf '%s\n' "$1" | grep -Eq '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'
}

# Kubernetes label key (optional DNS-subdomain prefix and '/') and value (may be empty).
is_label() {
	key=${1%%=*}
	value=${1#*=}
	[ "$key" != "$1" ] || return 1
	name=${key##*/}
	if [ "$name" != "$key" ]; then
		is_dns_subdomain "${key%/*}" || return 1
	fi
	[ ${#name} -le 63 ] && [ ${#value} -le 63 ] &&
		printf '%s\n' "$name" | grep -Eq '^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$' &&
		printf '%s\n' "$value" | grep -Eq '^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$'
}

# Values end up double-quoted in an env file that both systemd and sh read the same way.
check_plain() {
	case $2 in
	*"$NL"* | *\"* | *\\* | *\$* | *\`*)
		die "$1: must not contain newlines, quotes, backslashes, \$ or backquotes: '$2'" ;;
	esac
}

# ---- arguments ---------------------------------------------------------------------------

[ $# -gt 0 ] || {
	usage >&2
	printf '\n' >&2
	die "missing the role: control-plane or worker"
}
case $1 in
-h | --help)
	usage
	exit 0
	;;
control-plane | worker) ROLE=$1 ;;
-*) die "missing the role (control-plane or worker) before $1" ;;
*) die "unknown role '$1': expected control-plane or worker" ;;
esac
shift

ID='' IP='' PEERS='' NAME='' SERVERS='' LABELS='' EXTRA_ARGS='' TOKEN_FILE=''
# The options given, as " --id --ip ... ".
GIVEN=' '
BIN_DIR=/vagrant/target/release
UNITS_DIR=''
ROOT=/
NO_START=''

while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	-h | --help)
		usage
		exit 0
		;;
	--no-start)
		NO_START=1
		shift
		continue
		;;
	--*=*)
		value=${opt#*=}
		opt=${opt%%=*}
		shift
		;;
	--*)
		[ $# -ge 2 ] || die "$opt needs a value"
		value=$2
		shift 2
		;;
	*) die "unexpected argument '$opt'" ;;
	esac
	case $opt in
	--id) ID=$value ;;
	--ip) IP=$value ;;
	--peers) PEERS=$value ;;
	--name) NAME=$value ;;
	--servers) SERVERS=$value ;;
	--labels) LABELS=$value ;;
	--bin-dir) BIN_DIR=$value ;;
	--units-dir) UNITS_DIR=$value ;;
	--extra-args) EXTRA_ARGS=$value ;;
	--token-file) TOKEN_FILE=$value ;;
	--root) ROOT=$value ;;
	--no-start) die "--no-start takes no value" ;;
	*) die "unknown option $opt" ;;
	esac
	GIVEN="$GIVEN$opt "
done

given() {
	case $GIVEN in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

# Role-specific checks; LISTEN is what the daemon binds.
if [ "$ROLE" = control-plane ]; then
	for o in --name --servers --labels; do
		! given $o || die "$o is a worker option, not for control-plane"
	done
	given --id || die "control-plane needs --id N (this member's Raft id)"
	is_id "$ID" || die "--id: '$ID' is not a positive integer"
	given --ip || die "control-plane needs --ip IP (this host's address)"
	is_ipv4 "$IP" || die "--ip: '$IP' is not an IPv4 address"
	given --peers || die "control-plane needs --peers 1=IP:PORT,2=IP:PORT,..."
	[ -n "$PEERS" ] || die "--peers is empty"
	check_plain --peers "$PEERS"
	SELF='' seen=','
	old_ifs=$IFS
	IFS=,
	# shellcheck disable=SC2086 # split at the commas on purpose
	set -- $PEERS
	IFS=$old_ifs
	for entry in "$@"; do
		peer_id=${entry%%=*}
		endpoint=${entry#*=}
		{ [ "$peer_id" != "$entry" ] && is_id "$peer_id" && is_endpoint "$endpoint"; } ||
			die "--peers: malformed entry '$entry': expected ID=HOST:PORT (ID > 0, PORT 1-65535)"
		case $seen in
		*",$peer_id,"*) die "--peers: id $peer_id appears twice" ;;
		esac
		seen="$seen$peer_id,"
		[ "$peer_id" -ne "$ID" ] || SELF=$endpoint
	done
	[ -n "$SELF" ] || die "--peers has no entry for --id $ID"
	[ "${SELF%:*}" = "$IP" ] ||
		die "--peers: the entry for --id $ID is $SELF, but --ip is $IP (a member's entry is its own address)"
	LISTEN=$SELF
	DAEMON=skiff-control-plane
	ENV_NAME=control-plane
	DATA_DIR=$CP_DATA_DIR
else
	for o in --id --peers; do
		! given $o || die "$o is a control-plane option, not for worker"
	done
	given --name || die "worker needs --name NAME (the node's name)"
	is_dns_subdomain "$NAME" ||
		die "--name: '$NAME' is not a lowercase DNS subdomain (a-z, 0-9, '-', '.')"
	given --ip || die "worker needs --ip IP (this host's address)"
	is_ipv4 "$IP" || die "--ip: '$IP' is not an IPv4 address"
	given --servers || die "worker needs --servers IP:PORT,... (the control-plane endpoints)"
	[ -n "$SERVERS" ] || die "--servers is empty"
	check_plain --servers "$SERVERS"
	old_ifs=$IFS
	IFS=,
	# shellcheck disable=SC2086
	set -- $SERVERS
	IFS=$old_ifs
	for entry in "$@"; do
		is_endpoint "$entry" || die "--servers: malformed entry '$entry': expected HOST:PORT"
	done
	check_plain --labels "$LABELS"
	old_ifs=$IFS
	IFS=,
	# shellcheck disable=SC2086
	set -- $LABELS
	IFS=$old_ifs
	for entry in "$@"; do
		is_label "$entry" ||
			die "--labels: malformed entry '$entry': expected KEY=VALUE (Kubernetes label syntax)"
	done
	LISTEN=$IP:$AGENT_PORT
	DAEMON=skiff-agent
	ENV_NAME=agent
	DATA_DIR=$AGENT_DATA_DIR
fi
check_plain --extra-args "$EXTRA_ARGS"

if [ -z "$UNITS_DIR" ]; then
	script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
	UNITS_DIR=$script_dir/../systemd
fi
UNIT=$DAEMON.service
[ -f "$UNITS_DIR/$UNIT" ] || die "--units-dir $UNITS_DIR: no $UNIT there"
for binary in "$DAEMON" skiff; do
	{ [ -f "$BIN_DIR/$binary" ] && [ -x "$BIN_DIR/$binary" ]; } ||
		die "--bin-dir $BIN_DIR: no executable $binary there (build on the host first: cargo build --release)"
done
[ -d "$ROOT" ] || die "--root $ROOT: not a directory"
# R prefixes every path written; empty for /.
R=${ROOT%/}
case $R in
'' | /*) ;;
*) R=$(CDPATH='' cd -- "$R" && pwd) ;;
esac

# The cluster token: given, or installed by an earlier run. Never on a command line.
TOKEN=/etc/skiff/token
if given --token-file; then
	{ [ -f "$TOKEN_FILE" ] && [ -r "$TOKEN_FILE" ] && [ -s "$TOKEN_FILE" ]; } ||
		die "--token-file $TOKEN_FILE: not a readable, non-empty file (make one with: skiff token generate)"
	grep -q '^skiff1\.' "$TOKEN_FILE" ||
		die "--token-file $TOKEN_FILE: not a cluster token (skiff token generate)"
elif [ ! -s "$R$TOKEN" ]; then
	die "needs --token-file FILE (the cluster token, from skiff token generate) on the first run"
fi
# ---- install -----------------------------------------------------------------------------

# Copies next to the target, then renames: a running binary is replaced, not overwritten.
install_file() { # SOURCE DEST MODE
	cp "$1" "$2.new.$$"
	chmod "$3" "$2.new.$$"
	mv -f "$2.new.$$" "$2"
}

mkdir -p "$R/usr/local/bin" "$R/etc/systemd/system" "$R/etc/skiff" "$R$DATA_DIR"
# Raft state is nobody else's business.
[ "$ROLE" = worker ] || chmod 0700 "$R$DATA_DIR"
for binary in "$DAEMON" skiff; do
	install_file "$BIN_DIR/$binary" "$R/usr/local/bin/$binary" 0755
done
install_file "$UNITS_DIR/$UNIT" "$R/etc/systemd/system/$UNIT" 0644
# The token is the cluster's root secret (its CA derives from it): root only, 0600 from
# the start (umask), then renamed into place.
if given --token-file; then
	(
		umask 077
		cp "$TOKEN_FILE" "$R$TOKEN.new.$$"
	)
	chmod 0600 "$R$TOKEN.new.$$"
	mv -f "$R$TOKEN.new.$$" "$R$TOKEN"
fi

ENV_FILE=/etc/skiff/$ENV_NAME.env
{
	printf '# Written by deploy/vagrant/provision.sh; read by %s (EnvironmentFile=).\n' "$UNIT"
	printf '# Change the flags here, then: systemctl restart %s\n' "$UNIT"
	if [ "$ROLE" = control-plane ]; then
		printf '# SKIFF_PEERS only matters on the first start: a member keeps its membership\n'
		printf '# in its data dir (change it with the Cluster membership API).\n'
		printf 'SKIFF_ID="%s"\n' "$ID"
		printf 'SKIFF_LISTEN="%s"\n' "$LISTEN"
		printf 'SKIFF_PEERS="%s"\n' "$PEERS"
	else
		printf 'SKIFF_NAME="%s"\n' "$NAME"
		printf 'SKIFF_SERVERS="%s"\n' "$SERVERS"
		printf 'SKIFF_NODE_IP="%s"\n' "$IP"
		printf 'SKIFF_LABELS="%s"\n' "$LABELS"
		printf 'SKIFF_LISTEN="%s"\n' "$LISTEN"
	fi
	printf 'SKIFF_DATA_DIR="%s"\n' "$DATA_DIR"
	printf '# More flags (%s --help), split at whitespace.\n' "$DAEMON"
	printf 'SKIFF_ARGS="%s"\n' "$EXTRA_ARGS"
} >"$R$ENV_FILE.new.$$"
chmod 0644 "$R$ENV_FILE.new.$$"
mv -f "$R$ENV_FILE.new.$$" "$R$ENV_FILE"

say "installed $R/usr/local/bin/$DAEMON, $R/usr/local/bin/skiff, $R/etc/systemd/system/$UNIT, $R$ENV_FILE, $R$TOKEN, $R$DATA_DIR"

if [ "$ROLE" = worker ]; then
	# runc: the agent's default `oci` runtime needs it (without it, the agent refuses to start).
	packages=""
	[ -x /bin/busybox ] || packages="busybox-static"
	command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || packages="$packages runc"
	if [ -n "$R" ]; then
		say "not installing busybox-static or runc: --root is not /"
	elif [ -z "$packages" ]; then
		:
	elif command -v apt-get >/dev/null 2>&1; then
		say "installing ${packages# } (runc runs the pods' images; busybox is the workloads' toolbox)"
		DEBIAN_FRONTEND=noninteractive apt-get update -q
		# shellcheck disable=SC2086 # one word per package
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages
	else
		say "no apt-get here: install runc and a static busybox (/bin/busybox)"
	fi
fi

# ---- start -------------------------------------------------------------------------------

start_hint() {
	say "start it with: systemctl daemon-reload && systemctl enable --now $UNIT"
	# The same command for sh: ${VAR} is one word (quoted), $VAR splits at whitespace.
	say "(without systemd: set -a; . $ENV_FILE; set +a; $(sed -n 's/\${[A-Z_]*}/"&"/g; s/^ExecStart=//p' "$UNITS_DIR/$UNIT"))"
}

if [ -n "$NO_START" ]; then
	say "not starting $UNIT (--no-start)"
	start_hint
elif [ -n "$R" ]; then
	say "not starting $UNIT: installed into --root $ROOT, not this system"
elif [ ! -d /run/systemd/system ]; then
	say "systemd is not running here (no /run/systemd/system): not starting $UNIT"
	start_hint
elif systemctl is-active --quiet "$UNIT"; then
	systemctl daemon-reload
	systemctl enable "$UNIT"
	# Picks up new binaries and flags. The agent's pods keep running (KillMode=process).
	systemctl restart "$UNIT"
	say "restarted $UNIT"
else
	systemctl daemon-reload
	systemctl enable --now "$UNIT"
	say "started $UNIT (journalctl -u $UNIT -f to follow it)"
fi
