#!/usr/bin/env bash
# Assembles the root filesystem of a Cairn image: the given binaries in /usr/local/bin, only the
# shared libraries they link (as `ldd` resolves them on the build machine, at the same paths),
# the CA bundle, an /etc/passwd and /etc/group naming root and nonroot (65532), and /tmp.
# Nothing else: no shell, no package manager, no libraries nobody links.
#
#   tools/image-rootfs.sh DIR BINARY...
#
# DIR must not exist or be empty. A binary that `ldd` calls static ("not a dynamic executable"
# or "statically linked") brings no libraries. Used by tools/build-images.sh and by the build
# stage of Dockerfile.control and Dockerfile.agent, so every way of building gives the same tree.
set -euo pipefail

die() { printf 'image-rootfs.sh: %s\n' "$*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: tools/image-rootfs.sh DIR BINARY..."
root=$1
shift
if [ -e "$root" ] && [ -n "$(ls -A "$root")" ]; then die "$root is not empty"; fi
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"

# The libraries one binary links: the resolved path of every `name => /path (addr)` line and
# the interpreter's `/path (addr)` line. A library ldd cannot find fails the build.
libraries() {
    local out
    out=$(ldd "$1" 2>&1) || {
        case "$out" in *"not a dynamic executable"*) return 0 ;; esac
        die "ldd $1 failed: $out"
    }
    case "$out" in *"statically linked"*) return 0 ;; esac
    if grep -q '=> not found' <<<"$out"; then die "$1 links a library ldd cannot find: $out"; fi
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

for binary in "$@"; do
    [ -x "$binary" ] || die "$binary is not an executable file"
    install -m 0755 "$binary" "$root/usr/local/bin/$(basename "$binary")"
    while read -r lib; do
        [ -n "$lib" ] || continue
        # Same path as on the build machine (the interpreter path is compiled into the binary),
        # holding the file a symlink points to.
        mkdir -p "$root$(dirname "$lib")"
        cp -L --preserve=mode "$lib" "$root$lib"
    done < <(libraries "$binary")
done

# TLS roots for S3, GCS and Azure endpoints with public certificates.
bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$bundle" ] || die "$bundle is missing (apt-get install ca-certificates)"
install -m 0644 "$bundle" "$root/etc/ssl/certs/ca-certificates.crt"

printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
