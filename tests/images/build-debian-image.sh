#!/usr/bin/env bash
# build-debian-image.sh - build (and cache) the Debian 12 cloud-init test guest used by
# the libvirt integration tests of the virtkit.guests collection.
#
# Usage:
#   tests/images/build-debian-image.sh [OUTDIR]
#
#   OUTDIR defaults to ${VIRTKIT_IMAGE_DIR:-/var/lib/libvirt/images/virtkit-test}.
#
# Produces (mode 0644, readable by qemu running as libvirt-qemu):
#   OUTDIR/debian-12-cloud.qcow2   compressed qcow2 holding a bare ext4 filesystem
#                                  (no partition table, label "root", 2 GiB virtual)
#   OUTDIR/debian-12-vmlinuz       the guest's kernel (linux-image-*-cloud-amd64)
#   OUTDIR/debian-12-initrd.img    the guest's initramfs-tools initrd
#   OUTDIR/debian-12-image.stamp   what was built: script hash, mirror, kernel, sizes
# and prints the three paths on stdout, one per line (progress goes to stderr). When
# all exist and the stamp matches this script, it exits at once.
#
# Boot it by direct kernel boot (no boot loader in the image), domain type 'qemu'
# (TCG), with the kernel command line
#
#   root=LABEL=root console=ttyS0
#
# plus <acpi/> (graceful shutdown), a virtio disk, a virtio NIC, a virtio-rng and the
# guest-agent channel org.qemu.guest_agent.0. Use the qcow2 as a read-only backing
# file of a per-guest overlay; never boot it directly. Give each guest a NoCloud seed
# (ISO labelled "cidata") or a config drive. See tests/images/README.md and
# tests/images/boot-debian-check.sh.
#
# The guest (Debian 12 "bookworm", debootstrap --variant=minbase):
#   - systemd, udev, dbus, cloud-init (datasource_list [NoCloud, ConfigDrive, None]),
#     ifupdown + isc-dhcp-client (cloud-init renders the network config), openssh-server,
#     sudo, python3, qemu-guest-agent (started by udev when its channel exists);
#   - no SSH host keys in the image: cloud-init's ssh module creates them (ed25519 and
#     ECDSA; no RSA, which is slow to generate under TCG) on the first boot of each
#     instance, and virtkit-ssh-hostkeys.service creates them before ssh.service
#     whenever they are still missing (e.g. cloud-init disabled);
#   - empty /etc/machine-id (systemd creates one per guest) and /etc/resolv.conf,
#     LANG=C.UTF-8, fstab "LABEL=root /", a getty on ttyS0, root password locked.
#
# Environment:
#   VIRTKIT_IMAGE_DIR          default OUTDIR (see above)
#   VIRTKIT_DEBIAN_MIRROR      Debian mirror URL; default: the mirror apt uses for
#                              bookworm on this host, else http://deb.debian.org/debian
#   VIRTKIT_DEBIAN_REBUILD=1   rebuild even if the cached image is current
#
# The cached image is not rebuilt when Debian publishes updates (the fast path asks
# the network nothing); delete the stamp or set VIRTKIT_DEBIAN_REBUILD=1 to pick them
# up. Do not rebuild while overlays backed by the image exist: they would silently
# point at a different filesystem.
#
# Needs: root, debootstrap, e2fsprogs >= 1.43 (mkfs.ext4 -d), qemu-img, flock,
# timeout, and the Debian mirror over the network. No loop devices, no systemd on the
# build host.

set -euo pipefail

readonly OUTDIR="${1:-${VIRTKIT_IMAGE_DIR:-/var/lib/libvirt/images/virtkit-test}}"
readonly NAME=debian-12
readonly QCOW_OUT="$OUTDIR/$NAME-cloud.qcow2"
readonly KERNEL_OUT="$OUTDIR/$NAME-vmlinuz"
readonly INITRD_OUT="$OUTDIR/$NAME-initrd.img"
readonly STAMP="$OUTDIR/$NAME-image.stamp"
readonly LOCK="$OUTDIR/.$NAME-image.lock"
readonly BUILD_PREFIX=".$NAME-build."
readonly SUITE=bookworm
readonly DISK_SIZE=2G
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# python3-cffi-backend must be named: otherwise debootstrap stops at a virtual package
# (python3-cffi-backend-api-*) that cloud-init's dependencies need.
readonly PACKAGES=(
    systemd-sysv udev dbus libpam-systemd
    cloud-init openssh-server
    linux-image-cloud-amd64 initramfs-tools
    ifupdown isc-dhcp-client netbase iproute2
    sudo python3 python3-cffi-backend
    qemu-guest-agent
)

# Upper bounds (seconds) for everything that may wait on something else.
readonly DEBOOTSTRAP_TIMEOUT=1800  # the whole debootstrap (download + install)
readonly STEP_TIMEOUT=600          # mkfs.ext4 -d, qemu-img convert
readonly CHROOT_TIMEOUT=120        # one command in the rootfs
readonly LOCK_TIMEOUT=2400         # another build of the same OUTDIR
readonly KILL_GRACE=20             # TERM -> KILL for a timed-out or interrupted step

log() { printf 'build-debian-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The "script version" is the hash of this file: any change to the recipe invalidates
# the cached image.
SCRIPT_HASH="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
readonly SCRIPT_HASH

stamp_value() { # KEY -> value recorded in the stamp (empty if none)
    sed -n "s/^$1=//p" "$STAMP" 2>/dev/null | head -n1
}

is_current() { # true when the outputs exist and the stamp matches this script
    [[ "${VIRTKIT_DEBIAN_REBUILD:-0}" != 1 ]] || return 1
    [[ -s "$QCOW_OUT" && -s "$KERNEL_OUT" && -s "$INITRD_OUT" && -f "$STAMP" ]] || return 1
    [[ "$(stamp_value script_sha256)" == "$SCRIPT_HASH" ]] || return 1
}

print_paths() {
    printf '%s\n%s\n%s\n' "$QCOW_OUT" "$KERNEL_OUT" "$INITRD_OUT"
}

# Fast path: nothing to do.
if is_current; then
    print_paths
    exit 0
fi

[[ "$(id -u)" == 0 ]] || die "must run as root (debootstrap, chroot, file ownership)"
for tool in debootstrap mkfs.ext4 qemu-img flock timeout chroot findmnt; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[[ "$(dpkg --print-architecture 2>/dev/null || uname -m)" =~ ^(amd64|x86_64)$ ]] \
    || die "this builds an amd64 guest and must run on an amd64 host"
[[ "$(mkfs.ext4 2>&1 || true)" == *"[-d "* ]] || die "mkfs.ext4 does not support -d (need e2fsprogs >= 1.43)"

if [[ ! -d "$OUTDIR" ]]; then
    mkdir -p "$OUTDIR"
    chmod 0755 "$OUTDIR"
fi

# --- bounded steps, interruption and cleanup ------------------------------------------
# Long steps run in the background under `timeout` and the script `wait`s for them, so
# a signal is handled at once (bash would defer the trap until a foreground child ends).
# timeout puts itself and the step in a process group of their own and forwards TERM to
# the whole group, so dpkg/maintainer scripts under debootstrap stop too.
CHILD=""
WORK=""

run_bounded() { # SECONDS CMD... : run CMD with a time limit; returns its status
    local limit="$1" rc=0
    shift
    timeout --kill-after="$KILL_GRACE" "$limit" "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    [[ "$rc" != 124 ]] || log "timed out after ${limit}s: $*"
    return "$rc"
}

umount_below() { # DIR: unmount everything mounted at or below DIR, deepest first
    local dir="$1" mnt i
    local -a mounts=()
    [[ -d "$dir" ]] || return 0
    for i in 1 2 3; do
        mapfile -t mounts < <(findmnt -rn -o TARGET | awk -v d="$dir" \
            'index($0, d "/") == 1 || $0 == d' | sort -r)
        [[ ${#mounts[@]} -gt 0 ]] || return 0
        for mnt in "${mounts[@]}"; do
            umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
        done
        [[ "$i" == 3 ]] || sleep 1
    done
    findmnt -rn -o TARGET | grep -q -F "$dir/" && return 1
    return 0
}

remove_tree() { # DIR: unmount what debootstrap left mounted, then delete (never crossing mounts)
    local dir="$1"
    [[ -n "$dir" && -d "$dir" ]] || return 0
    if ! umount_below "$dir"; then
        log "WARNING: cannot unmount everything below $dir; leaving it for the next run"
        return 0
    fi
    rm -rf --one-file-system -- "$dir" || log "WARNING: could not remove $dir completely"
}

cleanup() {
    local n=0
    if [[ -n "$CHILD" ]] && kill -0 "$CHILD" 2>/dev/null; then
        log "stopping the running step (pid $CHILD)"
        kill -TERM "$CHILD" 2>/dev/null || true
        while kill -0 "$CHILD" 2>/dev/null && [[ "$n" -lt $((KILL_GRACE * 10 + 50)) ]]; do
            sleep 0.1
            n=$((n + 1))
        done
        kill -KILL "$CHILD" 2>/dev/null || true
    fi
    [[ -z "$WORK" ]] || remove_tree "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Serialise concurrent builds of the same OUTDIR, then re-check: another run may have
# finished the build while we waited.
exec 9>"$LOCK"
flock -w "$LOCK_TIMEOUT" 9 || die "another build holds $LOCK for more than ${LOCK_TIMEOUT}s"
if is_current; then
    print_paths
    exit 0
fi

# Leftovers of a build that was killed (SIGKILL, power loss): we hold the lock, so
# nobody else uses them.
for stale in "$OUTDIR/$BUILD_PREFIX"*; do
    [[ -d "$stale" ]] || continue
    log "removing the leftovers of an interrupted build: $stale"
    remove_tree "$stale"
done

# Everything is built under a temporary directory inside OUTDIR (same filesystem, so
# the final mv is an atomic rename) and removed on any exit.
WORK="$(mktemp -d "$OUTDIR/${BUILD_PREFIX}XXXXXX")"
readonly WORK
readonly ROOTFS="$WORK/rootfs"

# --- the mirror -------------------------------------------------------------------------
apt_mirror() { # the mirror apt on this host is configured with for $SUITE (if any)
    command -v apt-get >/dev/null || return 0
    # shellcheck disable=SC2016 # $(...) are apt's format fields, not shell
    timeout 30 apt-get indextargets --format '$(TARGET_OF) $(SITE) $(RELEASE)' 2>/dev/null \
        | awk -v s="$SUITE" '$1 == "deb" && $3 == s && $2 ~ /^https?:\/\// { print $2; exit }'
}
MIRROR="${VIRTKIT_DEBIAN_MIRROR:-}"
[[ -n "$MIRROR" ]] || MIRROR="$(apt_mirror || true)"
[[ -n "$MIRROR" ]] || MIRROR=http://deb.debian.org/debian
MIRROR="${MIRROR%/}"
readonly MIRROR
log "mirror: $MIRROR ($SUITE)"

# --- debootstrap ------------------------------------------------------------------------
include="$(IFS=,; printf '%s' "${PACKAGES[*]}")"
debootstrap_args=(--variant=minbase --arch=amd64 --components=main "--include=$include")
[[ -f "$KEYRING" ]] && debootstrap_args+=("--keyring=$KEYRING")

log "debootstrap $SUITE into $ROOTFS (a few minutes; log: $ROOTFS/debootstrap/debootstrap.log)"
T0=$SECONDS
if ! run_bounded "$DEBOOTSTRAP_TIMEOUT" \
        debootstrap "${debootstrap_args[@]}" "$SUITE" "$ROOTFS" "$MIRROR" >&2; then
    if [[ -f "$ROOTFS/debootstrap/debootstrap.log" ]]; then
        log "last lines of debootstrap.log:"
        tail -n 25 "$ROOTFS/debootstrap/debootstrap.log" >&2 || true
    fi
    die "debootstrap $SUITE from $MIRROR failed (mirror unreachable or a package failed to install)"
fi
log "debootstrap done in $((SECONDS - T0))s"
# debootstrap unmounts its own mounts on success; make sure nothing is left mounted
# before mkfs.ext4 -d walks the tree.
umount_below "$ROOTFS" || die "cannot unmount what debootstrap mounted below $ROOTFS"

in_rootfs() { # CMD...: run a command inside the rootfs (nothing may start services there)
    run_bounded "$CHROOT_TIMEOUT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" "$@"
}

# --- configure the rootfs ---------------------------------------------------------------
log "configuring the rootfs"

cat >"$ROOTFS/etc/fstab" <<'EOF'
# <file system> <mount point> <type> <options> <dump> <pass>
LABEL=root / ext4 defaults,errors=remount-ro 0 1
EOF

# Per-guest identity: debootstrap copied the build host's resolv.conf, hostname and hosts.
: >"$ROOTFS/etc/resolv.conf"
: >"$ROOTFS/etc/machine-id"
rm -f "$ROOTFS/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$ROOTFS/var/lib/dbus/machine-id"
echo debian >"$ROOTFS/etc/hostname"
cat >"$ROOTFS/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
rm -f "$ROOTFS/var/lib/systemd/random-seed"

printf 'LANG=C.UTF-8\n' >"$ROOTFS/etc/default/locale"
printf 'LANG=C.UTF-8\n' >"$ROOTFS/etc/locale.conf"

cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
EOF

# ifupdown: cloud-init renders the NICs into interfaces.d (eni renderer).
cat >"$ROOTFS/etc/network/interfaces" <<'EOF'
# Interfaces are configured by cloud-init in /etc/network/interfaces.d/.
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*
EOF
mkdir -p "$ROOTFS/etc/network/interfaces.d"

mkdir -p "$ROOTFS/etc/cloud/cloud.cfg.d"
cat >"$ROOTFS/etc/cloud/cloud.cfg.d/99_virtkit.cfg" <<'EOF'
# virtkit test image (tests/images/build-debian-image.sh)
datasource_list: [NoCloud, ConfigDrive, None]
# Host keys are made per instance (cloud-init's ssh module, first boot). No RSA key:
# generating one takes 10-15 s under TCG and delays SSH by as much.
ssh_deletekeys: true
ssh_genkeytypes: [ed25519, ecdsa]
# No boot loader in the image (direct kernel boot): skip the grub debconf probing.
grub_dpkg:
  enabled: false
EOF

# SSH host keys are per guest: none in the image. cloud-init creates them before
# ssh.service on an instance's first boot; this unit covers every other case.
rm -f "$ROOTFS"/etc/ssh/ssh_host_*
cat >"$ROOTFS/etc/ssh/sshd_config.d/10-virtkit-hostkeys.conf" <<'EOF'
# virtkit test image: ed25519 and ECDSA host keys only (see cloud.cfg.d/99_virtkit.cfg).
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
EOF
cat >"$ROOTFS/etc/systemd/system/virtkit-ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate missing SSH host keys (virtkit test image)
After=cloud-init.service
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/bin/sh -c 'test -e /etc/ssh/ssh_host_ecdsa_key || exec ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key'

[Install]
WantedBy=ssh.service multi-user.target
EOF

# qemu-guest-agent has no [Install] section: udev starts it when the virtio-serial port
# org.qemu.guest_agent.0 appears. Check that the rule is there.
if ! grep -rqs 'qemu-guest-agent' "$ROOTFS"/usr/lib/udev/rules.d "$ROOTFS"/lib/udev/rules.d; then
    log "WARNING: no udev rule starts qemu-guest-agent; enabling the unit instead"
    in_rootfs systemctl enable qemu-guest-agent.service >&2 || true
fi
in_rootfs systemctl enable virtkit-ssh-hostkeys.service serial-getty@ttyS0.service >&2 \
    || die "systemctl enable in the rootfs failed"

# Root: no password (locked); log in with the cloud-init user.
in_rootfs passwd -l root >/dev/null || die "passwd -l root failed"

# Kernel and initrd for direct kernel boot.
KVER="$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' \
    | sort -V | tail -n1)"
[[ -n "$KVER" ]] || die "no kernel in $ROOTFS/boot"
[[ -f "$ROOTFS/boot/initrd.img-$KVER" ]] || die "no initrd for $KVER in $ROOTFS/boot"
# shellcheck disable=SC2016 # ${Version} is a dpkg-query field, not shell
KPKG_VERSION="$(in_rootfs dpkg-query -W -f '${Version}' "linux-image-$KVER" 2>/dev/null || true)"
# shellcheck disable=SC2016
CLOUD_INIT_VERSION="$(in_rootfs dpkg-query -W -f '${Version}' cloud-init 2>/dev/null || true)"
log "kernel $KVER ($KPKG_VERSION), cloud-init $CLOUD_INIT_VERSION"
cp "$ROOTFS/boot/vmlinuz-$KVER" "$WORK/$NAME-vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$WORK/$NAME-initrd.img"

# Slim down: package caches, lists and logs are rebuilt on demand.
in_rootfs apt-get clean >/dev/null || true
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
    "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/var/lib/cloud/*
find "$ROOTFS/var/log" -type f -delete
mkdir -p "$ROOTFS/var/lib/apt/lists/partial"
[[ ! -e "$ROOTFS/debootstrap" ]] || rm -rf "$ROOTFS/debootstrap"

# --- filesystem and qcow2 ---------------------------------------------------------------
log "creating the ext4 filesystem ($DISK_SIZE) from the rootfs"
truncate -s "$DISK_SIZE" "$WORK/disk.raw"
run_bounded "$STEP_TIMEOUT" mkfs.ext4 -q -F -L root -d "$ROOTFS" "$WORK/disk.raw" >&2 \
    || die "mkfs.ext4 -d failed"
remove_tree "$ROOTFS"

log "converting to compressed qcow2"
run_bounded "$STEP_TIMEOUT" qemu-img convert -c -f raw -O qcow2 -o compat=1.1 \
    "$WORK/disk.raw" "$WORK/$NAME-cloud.qcow2" >&2 || die "qemu-img convert failed"
rm -f "$WORK/disk.raw"
chmod 0644 "$WORK/$NAME-cloud.qcow2" "$WORK/$NAME-vmlinuz" "$WORK/$NAME-initrd.img"
QCOW_BYTES="$(stat -c %s "$WORK/$NAME-cloud.qcow2")"

cat >"$WORK/$NAME-image.stamp" <<EOF
script_sha256=$SCRIPT_HASH
suite=$SUITE
mirror=$MIRROR
packages=${PACKAGES[*]}
kernel_release=$KVER
kernel_package_version=$KPKG_VERSION
cloud_init_version=$CLOUD_INIT_VERSION
disk_virtual_size=$DISK_SIZE
qcow2_bytes=$QCOW_BYTES
cmdline=root=LABEL=root console=ttyS0
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$((SECONDS - T0))
EOF
chmod 0644 "$WORK/$NAME-image.stamp"

# Install: drop the old stamp first, so an interruption between the renames leaves no
# stamp and the next run rebuilds; each rename itself is atomic.
rm -f "$STAMP"
mv -f "$WORK/$NAME-cloud.qcow2" "$QCOW_OUT"
mv -f "$WORK/$NAME-vmlinuz" "$KERNEL_OUT"
mv -f "$WORK/$NAME-initrd.img" "$INITRD_OUT"
mv -f "$WORK/$NAME-image.stamp" "$STAMP"

# qemu runs as libvirt-qemu: warn if it cannot read the results (e.g. a 0700 parent).
if id libvirt-qemu >/dev/null 2>&1 && command -v runuser >/dev/null; then
    if ! runuser -u libvirt-qemu -- test -r "$QCOW_OUT" -a -r "$KERNEL_OUT" -a -r "$INITRD_OUT"; then
        log "WARNING: user libvirt-qemu cannot read $OUTDIR (check parent directory modes)"
    fi
fi

log "built $QCOW_OUT ($((QCOW_BYTES / 1048576)) MiB, kernel $KVER) in $((SECONDS - T0))s"
print_paths
