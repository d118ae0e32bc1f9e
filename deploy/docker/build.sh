#!/usr/bin/env bash
# Builds Skiff's static binaries and the FROM-scratch image `skiff:dev`.
#
#   deploy/docker/build.sh [--release] [--tag IMAGE] [-- EXTRA CARGO ARGS]
#   deploy/docker/build.sh --binaries DIR [--tag IMAGE]
#
# --binaries packs the skiff binaries already in DIR (e.g. target/debug) instead of building
# static ones: dynamically linked binaries bring the shared libraries `ldd` names (glibc's
# loader, libc, libm, libgcc_s) into the image at the same paths. The tests use it, so that
# they do not build the whole tree a second time.
#
# Environment: SKIFF_IMAGE (tag, default skiff:dev), SKIFF_RELEASE=1 (same as --release),
# SKIFF_DOCKER_TARGET_DIR (cargo's target dir for this build, default target/docker, so the
# normal build is not invalidated), BUSYBOX (default /bin/busybox, Debian's busybox-static).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/deploy/docker"
tag="${SKIFF_IMAGE:-skiff:dev}"
release="${SKIFF_RELEASE:-0}"
busybox="${BUSYBOX:-/bin/busybox}"
cargo_extra=()
prebuilt=""

while [ $# -gt 0 ]; do
  case "$1" in
    --release) release=1 ;;
    --tag) tag="${2:?--tag needs IMAGE[:TAG]}"; shift ;;
    --tag=*) tag="${1#--tag=}" ;;
    --binaries) prebuilt="${2:?--binaries needs DIR}"; shift ;;
    --) shift; cargo_extra=("$@"); break ;;
    -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "build.sh: $*" >&2; exit 1; }

# Preconditions, before spending minutes on a build.
[ -x "$busybox" ] || die "$busybox not found: install Debian's busybox-static (apt-get install busybox-static)"
if ! "$busybox" --list >/dev/null 2>&1; then
  die "$busybox does not run as busybox"
fi
if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
  die "$busybox is dynamically linked; the image has no libc: install busybox-static, not busybox"
fi
command -v docker >/dev/null || die "docker not found"

triple=x86_64-unknown-linux-gnu
# Its own target dir: other RUSTFLAGS and profile settings would otherwise rebuild (and
# then invalidate) the normal build's dependencies.
export CARGO_TARGET_DIR="${SKIFF_DOCKER_TARGET_DIR:-$repo/target/docker}"
# --target makes RUSTFLAGS apply to the binaries only, not to build scripts and proc macros.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
profile_args=()
profile_dir=debug
if [ "$release" = 1 ]; then
  profile_args=(--release)
  profile_dir=release
else
  # No debug info in the image's debug build: a fraction of the size and link time.
  export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-false}"
fi

start=$(date +%s)
if [ -n "$prebuilt" ]; then
  bin="$(cd "$prebuilt" && pwd)" || die "--binaries $prebuilt: no such directory"
  for b in skiff-control-plane skiff-agent skiff; do
    [ -x "$bin/$b" ] || die "$bin/$b not found: build the binaries first"
  done
else
  echo "build.sh: cargo build ($profile_dir, static, $CARGO_TARGET_DIR)" >&2
  (cd "$repo" && "${CARGO:-cargo}" build --target "$triple" "${profile_args[@]}" \
    -p skiff-control-plane -p skiff-agent -p skiff-cli "${cargo_extra[@]}")
  bin="$CARGO_TARGET_DIR/$triple/$profile_dir"
  for b in skiff-control-plane skiff-agent skiff; do
    [ -x "$bin/$b" ] || die "$bin/$b was not built"
    if command -v file >/dev/null && ! file "$bin/$b" | grep -q 'statically linked\|static-pie linked'; then
      die "$bin/$b is not static: $(file "$bin/$b")"
    fi
  done
fi
built=$(date +%s)

# A small build context: the Dockerfile, the binaries, busybox and a few files.
ctx="$CARGO_TARGET_DIR/image-context"
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/etc" "$ctx/rootfs/tmp" "$ctx/rootfs/var/lib/skiff" \
  "$ctx/rootfs/var/lib/skiff-agent" "$ctx/rootfs/run" "$ctx/rootfs/root" \
  "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/bin"
chmod 1777 "$ctx/rootfs/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
  > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$ctx/rootfs/etc/group"
# Static glibc cannot load NSS modules: every address in flags is an IP.
printf 'passwd: files\ngroup: files\nhosts: files\n' > "$ctx/rootfs/etc/nsswitch.conf"
cp "$here/agent-entrypoint.sh" "$ctx/rootfs/usr/local/bin/skiff-agent-entrypoint"
chmod 755 "$ctx/rootfs/usr/local/bin/skiff-agent-entrypoint"
cp "$here/Dockerfile" "$ctx/Dockerfile"
cp "$busybox" "$ctx/busybox"
for b in skiff-control-plane skiff-agent skiff; do
  cp "$bin/$b" "$ctx/$b"
done
# Dynamically linked binaries (--binaries): their shared libraries, at the paths the loader
# looks for them.
if [ -n "$prebuilt" ]; then
  command -v ldd >/dev/null || die "ldd not found: it lists the libraries --binaries needs"
  for lib in $(ldd "$bin/skiff-control-plane" "$bin/skiff-agent" "$bin/skiff" |
    grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
  done
fi

echo "build.sh: docker build -t $tag" >&2
previous=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
docker build -t "$tag" "$ctx" >&2
# The image this tag named before: remove it if no tag names it any more and no container
# uses it (rmi refuses then), so repeated builds do not pile up untagged images.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$tag")" ] &&
  [ "$(docker image inspect -f '{{len .RepoTags}}' "$previous" 2>/dev/null)" = 0 ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
# The cluster token the compose file mounts into every container (unless SKIFF_TOKEN_FILE
# names another): made once, mode 0600, ignored by git. Delete it for a new cluster.
token="$here/cluster-token"
if [ ! -s "$token" ]; then
  (umask 077 && "$bin/skiff" token generate > "$token.new" && mv "$token.new" "$token")
  echo "build.sh: made the cluster token $token" >&2
fi
end=$(date +%s)
echo "build.sh: $tag built (cargo $((built - start)) s, image $((end - built)) s)" >&2
