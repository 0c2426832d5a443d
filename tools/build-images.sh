#!/usr/bin/env bash
# Builds Cairn's two images without a container registry, a Docker daemon or a base image:
#
#   cairn-control-plane   /usr/local/bin/cairn-control-plane, runs as nonroot (65532)
#   cairn-agent           /usr/local/bin/cairn-agent and a statically linked
#                         /usr/local/bin/datasafed (the client action pods receive)
#
# Each image is one layer (FROM scratch): the workspace's binaries, the shared libraries they link
# and nothing else (tools/image-rootfs.sh), assembled as an OCI image with umoci and written as
# an oci-archive with skopeo (Debian packages `umoci` and `skopeo`). Load one with
# `podman load -i <out>/cairn-agent.tar`, push one with
# `skopeo copy oci-archive:<out>/cairn-agent.tar docker://<registry>/cairn-agent:<tag>`.
#
#   tools/build-images.sh [--profile release|debug] [--out DIR] [--tag TAG] [--prebuilt]
#
#   --profile   which cargo profile's binaries go in (default: release)
#   --out       where the archives go (default: $CARGO_TARGET_DIR/images, else target/images)
#   --tag       image tag (default: the workspace version, the chart's appVersion)
#   --prebuilt  take cairn-control-plane and cairn-agent from <target>/<profile> as they are
#               (e.g. built by the test suite) instead of building them. The static datasafed
#               is always built (a no-op when fresh), in <target>/<host triple>/<profile>,
#               which no other build writes.
#
# The image names are ghcr.io/cairn-dp/cairn-control-plane:<tag> and
# ghcr.io/cairn-dp/cairn-agent:<tag>, the chart's defaults. Prints one line per image:
# `<archive> <name>`. Dockerfile.control and Dockerfile.agent build the same trees with Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { printf 'build-images.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '\033[1m[build-images.sh]\033[0m %s\n' "$*" >&2; }

profile=release out="" tag="" prebuilt=0
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=${2:?--profile needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a value}; shift 2 ;;
        --tag) tag=${2:?--tag needs a value}; shift 2 ;;
        --prebuilt) prebuilt=1; shift ;;
        *) die "unknown argument $1 (see the comment at the top of tools/build-images.sh)" ;;
    esac
done
case "$profile" in release | debug) ;; *) die "--profile must be release or debug, not $profile" ;; esac
for tool in umoci skopeo ldd; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install umoci skopeo)"
done

target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
out=${out:-$target_dir/images}
tag=${tag:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)}
[ -n "$tag" ] || die "no --tag and no version in Cargo.toml"
host=$(rustc -vV | sed -n 's/^host: //p')
profile_flag=()
[ "$profile" = release ] && profile_flag=(--release)

if [ "$prebuilt" = 0 ]; then
    log "cargo build ($profile): cairn-control-plane, cairn-agent"
    cargo build "${profile_flag[@]}" --locked -p cairn-control-plane -p cairn-agent \
        --bin cairn-control-plane --bin cairn-agent
fi
# datasafed runs inside action containers of any image (glibc or musl, old or new): linked
# statically. An explicit --target keeps these flags off build scripts and the host build.
log "cargo build ($profile, static, --target $host): datasafed"
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build "${profile_flag[@]}" --locked -p cairn-cli --bin datasafed --target "$host"
bin=$target_dir/$profile
datasafed=$target_dir/$host/$profile/datasafed
for f in "$bin/cairn-control-plane" "$bin/cairn-agent" "$datasafed"; do
    [ -x "$f" ] || die "$f is missing (build it, or run without --prebuilt)"
done
if ldd "$datasafed" >/dev/null 2>&1 && ! ldd "$datasafed" 2>&1 | grep -q 'statically linked'; then
    die "$datasafed is dynamically linked; it must run in containers of any image"
fi

arch=$(uname -m)
case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, so that two builds of one commit carry the same metadata.
created=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
rootless=()
[ "$(id -u)" = 0 ] || rootless=(--rootless)

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-images.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# image NAME USER DESCRIPTION PORTS BINARY...
image() {
    local name=$1 user=$2 description=$3 ports=$4
    shift 4
    local rootfs=$work/$name-rootfs layout=$work/oci ref=ghcr.io/cairn-dp/$name:$tag
    tools/image-rootfs.sh "$rootfs" "$@"
    [ -d "$layout" ] || umoci init --layout "$layout"
    umoci new --image "$layout:$name"
    umoci insert "${rootless[@]}" --image "$layout:$name" \
        --history.created "$created" --history.created_by "tools/build-images.sh" \
        "$rootfs" /
    local config=(
        --config.user "$user" --config.workingdir / --config.env PATH=/usr/local/bin
        --config.entrypoint "/usr/local/bin/$name"
        --architecture "$arch" --os linux --created "$created" --author "Cairn"
        --no-history
    )
    local port
    for port in $ports; do config+=(--config.exposedports "$port/tcp"); done
    local key value
    while IFS='=' read -r key value; do
        config+=(--config.label "$key=$value" --manifest.annotation "$key=$value")
    done <<EOF
org.opencontainers.image.title=$name
org.opencontainers.image.description=$description
org.opencontainers.image.version=$tag
org.opencontainers.image.revision=$revision
org.opencontainers.image.created=$created
org.opencontainers.image.source=https://github.com/cairn-dp/cairn
org.opencontainers.image.licenses=Apache-2.0
EOF
    umoci config --image "$layout:$name" "${config[@]}"
    rm -f "$out/$name.tar"
    skopeo copy --quiet "oci:$layout:$name" "oci-archive:$out/$name.tar:$ref"
    printf '%s %s\n' "$out/$name.tar" "$ref"
}

image cairn-control-plane 65532:65532 \
    "Cairn control plane: reconcilers and the agent gRPC service (mutual TLS)" "9443 8080" \
    "$bin/cairn-control-plane"
# The agent runs as root: it reads other pods' volumes under the kubelet's pods directory, whatever
# their owner (the chart's README justifies each capability it keeps).
image cairn-agent 0:0 \
    "Cairn node agent and the datasafed client it gives action pods" "" \
    "$bin/cairn-agent" "$datasafed"
