#!/usr/bin/env bash
# Build a local stand-in for python:3.11-slim-bookworm without Docker Hub, for build hosts that
# reach only a Debian mirror and a Python package index (air-gapped or proxied on-premise sites).
#
#   deploy/docker/build-offline-base.sh [--ca-cert FILE]... [MIRROR [IMAGE]]
#   docker build --build-arg PYTHON_IMAGE=ledgerline-base:bookworm -t ledgerline:0.1.0 .
#
# MIRROR: the Debian mirror (default: the first bookworm mirror of this host's apt sources, else
#         http://deb.debian.org/debian). IMAGE: the tag to import as (default ledgerline-base:bookworm).
# --ca-cert FILE: an extra CA certificate (PEM) the image must trust, e.g. the one of a TLS-inspecting
#         proxy between the build host and the package index; may be given more than once.
#
# Needs root, debootstrap and a running Docker engine. Debian bookworm's python3 is 3.11, the minor
# version of the official image; the Dockerfile installs into a venv, so the system pip and its
# EXTERNALLY-MANAGED marker do not matter.
set -euo pipefail

ca_certs=()
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --ca-cert) ca_certs+=("${2:?--ca-cert needs a file}"); shift 2 ;;
        --help|-h) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

# The mirror apt already uses here: deb822 sources (URIs:) or one-line sources (deb URI bookworm ...).
default_mirror() {
    local uri
    uri=$(grep -hs -E '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources | awk '{print $2; exit}' || true)
    if [[ -z $uri ]]; then
        uri=$(grep -hs -E '^deb +(\[[^]]*\] +)?[^ ]+ +bookworm( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1; exit}' || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# Fail before the long debootstrap, not after it.
for cert in "${ca_certs[@]}"; do
    [[ -r $cert ]] || { echo "cannot read CA certificate: $cert" >&2; exit 2; }
done

mirror=${1:-$(default_mirror)}
image=${2:-ledgerline-base:bookworm}
rootfs=$(mktemp -d /tmp/ledgerline-rootfs.XXXXXX)
# --one-file-system: never into a /proc or /sys that a failed debootstrap left mounted.
trap 'rm -rf --one-file-system "$rootfs"' EXIT

echo "debootstrap bookworm from $mirror into $rootfs"
# minbase: essential packages and apt only; the image needs Python, venv and the CA bundle.
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    bookworm "$rootfs" "$mirror"

# Extra CAs go into the image's trust store (pip in the build stage uses it).
for cert in "${ca_certs[@]}"; do
    install -m 0644 "$cert" "$rootfs/usr/local/share/ca-certificates/$(basename "${cert%.*}").crt"
done
if [[ ${#ca_certs[@]} -gt 0 ]]; then
    chroot "$rootfs" update-ca-certificates
fi

# Like the slim image: no package lists or downloaded packages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
find "$rootfs/var/cache/apt/archives" -name '*.deb' -delete

# An imported tarball has no configuration: set PATH (the Dockerfile's ENV PATH=...:$PATH needs it),
# the locale and the command of the official image.
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$image"

docker run --rm "$image" python --version
echo "imported $image; build with: docker build --build-arg PYTHON_IMAGE=$image -t ledgerline:TAG ."
