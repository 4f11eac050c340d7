#!/usr/bin/env bash
# build-tiny-image.sh - build (and cache) the tiny test guest used by the libvirt
# integration tests of the virtkit.guests collection.
#
# Usage:
#   tests/images/build-tiny-image.sh [OUTDIR]
#
#   OUTDIR defaults to ${VIRTKIT_IMAGE_DIR:-/var/lib/libvirt/images/virtkit-test}.
#
# Produces (mode 0644, readable by qemu running as libvirt-qemu):
#   OUTDIR/tiny-vmlinuz       kernel of Debian's linux-image-*-cloud-amd64 package
#   OUTDIR/tiny-initrd.img    busybox initramfs (gzip-compressed newc cpio)
#   OUTDIR/tiny-image.stamp   what was built: script hash, kernel package and release
# and prints the kernel and initrd paths on stdout, one per line (progress goes to
# stderr). When both files exist and the stamp matches this script, it exits at once.
#
# Boot the guest by direct kernel boot with the kernel command line
#
#   console=ttyS0 quiet
#
# and domain type 'qemu' (TCG). Under TCG with 1 vCPU and 256 MiB it takes a DHCP
# lease on eth0 in about 12-13 s on an idle 2-core host (allow more under load). The guest:
#   - loads the virtio modules (PCI, net, blk, balloon, console) it finds for its kernel,
#     except those "virtkit.skipmod=MOD[,MOD...]" on the kernel command line names (for
#     example virtkit.skipmod=virtio_balloon boots a guest without a balloon driver; "-"
#     and "_" are alike; a skipped module that another one needs makes that one fail);
#   - brings up lo and eth0 and keeps a lease with udhcpc (address + default route);
#   - prints "virtkit-tiny: eth0 <ip>/<prefix> ..." and "virtkit-tiny: ready" on ttyS0;
#   - serves http://<ip>/ (busybox httpd, port 80): index.html holds its hostname,
#     uuid holds the SMBIOS system UUID (= the libvirt domain UUID), and
#     /cgi-bin/state is what the guest sees now, one key=value a line: hostname,
#     boot_id (new on every boot, also after a reset inside the same QEMU process),
#     uptime (seconds), mem_total_kib (MemTotal: falls when the balloon inflates), cpus
#     (online vCPUs), modules (loaded, comma-separated), nics (interface names but lo)
#     and ipv4 (addresses as NIC=ADDR/PREFIX, comma-separated);
#   - runs a root shell on the serial console, forever. It never exits or panics, and
#     by default it ignores ACPI power-button events: `virsh shutdown` does nothing, so
#     tests can exercise the force-off path. With "virtkit.acpi=1" on the kernel command
#     line it runs busybox acpid and powers off cleanly on the power button instead, so
#     tests can exercise the graceful path too.
# The hostname is "virtkit.hostname=NAME" from the kernel command line if given, else
# "tiny-" followed by the first 8 characters of the system UUID; it is sent to the DHCP
# server (option 12), so it shows in `virsh net-dhcp-leases`.
#
# Environment:
#   VIRTKIT_IMAGE_DIR        default OUTDIR (see above)
#   VIRTKIT_TINY_KERNEL_PKG  use this kernel package (e.g. linux-image-6.1.0-56-cloud-amd64)
#                            instead of the one linux-image-cloud-amd64 depends on;
#                            an existing image built from another package is rebuilt
#   VIRTKIT_TINY_REBUILD=1   rebuild even if the cached image is current
#
# The cached image is not rebuilt when Debian publishes a newer kernel (the fast path
# asks apt nothing); delete the stamp or set VIRTKIT_TINY_REBUILD=1 to pick it up.
#
# Needs: root, apt-get/apt-cache/dpkg (Debian or derivative), busybox-static, cpio,
# gzip, flock, and xz or zstd only if the kernel ships compressed modules.

set -euo pipefail

readonly OUTDIR="${1:-${VIRTKIT_IMAGE_DIR:-/var/lib/libvirt/images/virtkit-test}}"
readonly KERNEL_OUT="$OUTDIR/tiny-vmlinuz"
readonly INITRD_OUT="$OUTDIR/tiny-initrd.img"
readonly STAMP="$OUTDIR/tiny-image.stamp"
readonly LOCK="$OUTDIR/.tiny-image.lock"
readonly META_PKG="linux-image-cloud-amd64"
readonly BUSYBOX=/bin/busybox

# Modules to load, in this order. Missing ones are skipped with a message; their
# dependencies (read from each module's .modinfo) are loaded first if not listed.
readonly MODULES=(
    virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
    failover net_failover virtio_net virtio_blk
    virtio_balloon virtio_console
    button evdev
)

# Upper bounds (seconds) for everything that may wait on something else.
readonly APT_TIMEOUT=300       # one apt-get update / download
readonly APT_HTTP_TIMEOUT=30   # one stalled HTTP connection
readonly LOCK_TIMEOUT=900      # another build of the same OUTDIR

log() { printf 'build-tiny-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The "script version" is the hash of this file: any change to the script (the
# guest's /init lives here) invalidates the cached image.
SCRIPT_HASH="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
readonly SCRIPT_HASH

stamp_value() { # KEY -> value recorded in the stamp (empty if none)
    sed -n "s/^$1=//p" "$STAMP" 2>/dev/null | head -n1
}

is_current() { # true when the outputs exist and the stamp matches this script
    [[ "${VIRTKIT_TINY_REBUILD:-0}" != 1 ]] || return 1
    [[ -s "$KERNEL_OUT" && -s "$INITRD_OUT" && -f "$STAMP" ]] || return 1
    [[ "$(stamp_value script_sha256)" == "$SCRIPT_HASH" ]] || return 1
    if [[ -n "${VIRTKIT_TINY_KERNEL_PKG:-}" ]]; then
        [[ "$(stamp_value kernel_package)" == "$VIRTKIT_TINY_KERNEL_PKG" ]] || return 1
    fi
}

print_paths() {
    printf '%s\n%s\n' "$KERNEL_OUT" "$INITRD_OUT"
}

# Fast path: nothing to do.
if is_current; then
    print_paths
    exit 0
fi

[[ "$(id -u)" == 0 ]] || die "must run as root (writes $OUTDIR, uses apt-get)"
for tool in apt-get apt-cache dpkg dpkg-deb cpio gzip flock sha256sum; do
    command -v "$tool" >/dev/null || die "required tool '$tool' not found"
done
if ! { [[ -x "$BUSYBOX" ]] && "$BUSYBOX" --list >/dev/null 2>&1; }; then
    die "$BUSYBOX not found or not runnable (install busybox-static)"
fi
# A dynamically linked busybox would need its libraries in the initramfs.
if command -v ldd >/dev/null && ldd "$BUSYBOX" 2>/dev/null | grep -q '=>'; then
    die "$BUSYBOX is dynamically linked; install busybox-static"
fi

if [[ ! -d "$OUTDIR" ]]; then
    mkdir -p "$OUTDIR"
    chmod 0755 "$OUTDIR"
fi

# Serialise concurrent builds of the same OUTDIR, then re-check: another run may
# have finished the build while we waited.
exec 9>"$LOCK"
flock -w "$LOCK_TIMEOUT" 9 || die "another build holds $LOCK for more than ${LOCK_TIMEOUT}s"
if is_current; then
    print_paths
    exit 0
fi

# Everything is built under a temporary directory inside OUTDIR (same filesystem,
# so the final mv is an atomic rename) and removed on any exit.
WORK="$(mktemp -d "$OUTDIR/.build.XXXXXX")"
readonly WORK
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# apt options: bound every network wait, and download as root into our private
# directory (the _apt sandbox user cannot write there).
readonly APT_OPTS=(
    -q
    -o "Acquire::http::Timeout=$APT_HTTP_TIMEOUT"
    -o "Acquire::https::Timeout=$APT_HTTP_TIMEOUT"
    -o Acquire::Retries=2
    -o APT::Sandbox::User=root
)

APT_UPDATED=0
apt_update_once() { # refresh the package lists, at most once per run
    [[ "$APT_UPDATED" == 0 ]] || return 1
    APT_UPDATED=1
    log "refreshing apt package lists (apt-get update)"
    timeout "$APT_TIMEOUT" apt-get "${APT_OPTS[@]}" update >&2 \
        || log "apt-get update failed or timed out"
}

resolve_kernel_pkg() { # print the concrete linux-image-<release>-cloud-amd64 package
    if [[ -n "${VIRTKIT_TINY_KERNEL_PKG:-}" ]]; then
        printf '%s\n' "$VIRTKIT_TINY_KERNEL_PKG"
        return 0
    fi
    timeout 60 apt-cache depends "$META_PKG" 2>/dev/null \
        | awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ { print $2; exit }'
}

KPKG="$(resolve_kernel_pkg || true)"
if [[ -z "$KPKG" ]]; then
    # No package lists yet (fresh machine or cleaned lists): fetch them and retry.
    apt_update_once || true
    KPKG="$(resolve_kernel_pkg || true)"
fi
[[ -n "$KPKG" ]] || die "cannot resolve the kernel package behind $META_PKG (apt lists missing?)"
log "kernel package: $KPKG"

mkdir "$WORK/deb"
download_kernel() {
    (cd "$WORK/deb" && timeout "$APT_TIMEOUT" apt-get "${APT_OPTS[@]}" download "$KPKG" >&2)
}
if ! download_kernel; then
    # Usually stale or missing lists (404 for a superseded version); refresh once.
    log "download of $KPKG failed; retrying after apt-get update"
    rm -f "$WORK"/deb/*
    apt_update_once || true
    download_kernel || die "apt-get download $KPKG failed (no network or no such package?)"
fi
DEB="$(find "$WORK/deb" -maxdepth 1 -name "${KPKG}_*.deb" -print -quit)"
[[ -n "$DEB" ]] || die "apt-get download $KPKG produced no .deb"
KPKG_VERSION="$(dpkg-deb -f "$DEB" Version)"

log "extracting $(basename "$DEB")"
dpkg -x "$DEB" "$WORK/pkg"
rm -f "$DEB"

# The kernel release is the single directory under lib/modules (usrmerge or not).
MODROOT="$(find "$WORK/pkg/lib/modules" "$WORK/pkg/usr/lib/modules" -mindepth 1 -maxdepth 1 \
    -type d -print -quit 2>/dev/null || true)"
[[ -n "$MODROOT" ]] || die "no lib/modules/<release> directory in $KPKG"
KREL="$(basename "$MODROOT")"
VMLINUZ="$WORK/pkg/boot/vmlinuz-$KREL"
[[ -f "$VMLINUZ" ]] || die "$KPKG has no boot/vmlinuz-$KREL"
log "kernel release: $KREL ($KPKG_VERSION)"

# --- initramfs tree ---------------------------------------------------------------
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,www,lib/modules}
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
# One symlink per applet, at the path busybox itself reports (bin/sh, sbin/ip, ...).
while read -r applet; do
    [[ -e "$ROOT/$applet" ]] || ln -s /bin/busybox "$ROOT/$applet"
done < <("$BUSYBOX" --list-full)
[[ -e "$ROOT/bin/sh" ]] || ln -s busybox "$ROOT/bin/sh"

find_module() { # NAME -> path of NAME.ko[.xz|.zst|.gz] in the package (- and _ alike)
    local name="$1" alt="${1//_/-}"
    find "$MODROOT" -type f \( -name "$name.ko" -o -name "$name.ko.*" \
        -o -name "$alt.ko" -o -name "$alt.ko.*" \) -print -quit
}

install_module() { # SRC DEST: copy a module, decompressed (busybox insmod wants plain .ko)
    local src="$1" dest="$2"
    case "$src" in
        *.ko)     cp "$src" "$dest" ;;
        *.ko.xz)  command -v xz >/dev/null || die "xz is needed to unpack $src"
                  xz -dc "$src" >"$dest" ;;
        *.ko.zst) command -v zstd >/dev/null || die "zstd is needed to unpack $src"
                  zstd -dcq "$src" >"$dest" ;;
        *.ko.gz)  gzip -dc "$src" >"$dest" ;;
        *)        die "unknown module format: $src" ;;
    esac
}

module_deps() { # plain .ko -> its dependencies, one per line
    tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | head -n1 | tr ',' '\n' | sed '/^$/d'
}

LOADED=()    # modules in load order
MISSING=()   # requested modules this kernel does not have as modules
declare -A SEEN=()
add_module() { # NAME: install NAME after its dependencies; 1 if unavailable
    local name="$1" src dep
    [[ -z "${SEEN[$name]:-}" ]] || return 0
    SEEN[$name]=1
    src="$(find_module "$name")"
    if [[ -z "$src" ]]; then
        MISSING+=("$name")
        return 1
    fi
    install_module "$src" "$ROOT/lib/modules/$name.ko"
    while read -r dep; do
        add_module "$dep" || log "module $name depends on $dep, which is not in $KPKG"
    done < <(module_deps "$ROOT/lib/modules/$name.ko")
    LOADED+=("$name")
}
for mod in "${MODULES[@]}"; do
    add_module "$mod" || log "module $mod does not exist for $KREL (built in or absent): skipped"
done
printf '%s\n' "${LOADED[@]}" >"$ROOT/etc/modules.load"
printf '%s\n' "${MISSING[@]+"${MISSING[@]}"}" | sed '/^$/d' >"$ROOT/etc/modules.missing"
log "modules: ${LOADED[*]}"

# /init runs as PID 1 for the guest's whole life.
cat >"$ROOT/init" <<'EOF'
#!/bin/sh
# PID 1 of the virtkit tiny test guest (generated by tests/images/build-tiny-image.sh).
# It must never exit: the kernel panics when init dies.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1

say() { echo "virtkit-tiny: $*"; }

# Ctrl-Alt-Del sends SIGINT to init (ignored) instead of rebooting. Unless the command
# line says virtkit.acpi=1, no acpid runs, so ACPI power-button events (virsh shutdown)
# are ignored as well.
echo 0 >/proc/sys/kernel/ctrl-alt-del

# virtkit.hostname=NAME and virtkit.skipmod=MOD[,MOD...] (virtkit.acpi=1: below).
name=
skip=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case "$arg" in
        virtkit.hostname=*) name=${arg#virtkit.hostname=} ;;
        virtkit.skipmod=*) skip="$skip $(echo "${arg#virtkit.skipmod=}" | tr ',-' ' _')" ;;
    esac
done

while read -r mod; do
    case " $skip " in
        *" $mod "*) say "module $mod skipped (virtkit.skipmod)"; continue ;;
    esac
    insmod "/lib/modules/$mod.ko" || say "insmod $mod failed"
done </etc/modules.load
while read -r mod; do
    say "module $mod not available for kernel $(uname -r), skipped"
done </etc/modules.missing

# Hostname: virtkit.hostname=NAME on the command line, else tiny-<uuid prefix>.
uuid=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null)
[ -n "$name" ] || name="tiny-$(echo "${uuid:-00000000}" | cut -c1-8)"
hostname "$name"
echo "$name" >/etc/hostname
say "hostname $name, uuid ${uuid:-unknown}, kernel $(uname -r)"

ip link set lo up
ip addr add 127.0.0.1/8 dev lo 2>/dev/null

# virtio_net probes asynchronously: wait up to 10 s for eth0.
n=0
while [ ! -e /sys/class/net/eth0 ] && [ "$n" -lt 100 ]; do usleep 100000; n=$((n + 1)); done
if [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up
    # Foreground until the first lease (up to 10 discovers, 2 s apart), then udhcpc
    # keeps running in the background and renews the lease. Without a lease it
    # backgrounds too and keeps trying every 5 s.
    udhcpc -i eth0 -s /etc/udhcpc.script -t 10 -T 2 -A 5 -b -x "hostname:$name"
else
    say "no eth0 (no virtio NIC?)"
fi

acpi=0
for arg in $cmdline; do
    case "$arg" in virtkit.acpi=1) acpi=1 ;; esac
done
if [ "$acpi" = 1 ]; then
    # busybox acpid maps the power button (KEY_POWER via evdev) to PWRF/00000080
    # and runs that file from its config directory.
    mkdir -p /etc/acpi/PWRF
    printf '#!/bin/sh\necho "virtkit-tiny: power button, powering off" >/dev/console\nsync\npoweroff -f\n' \
        >/etc/acpi/PWRF/00000080
    chmod 0755 /etc/acpi/PWRF/00000080
    mkdir -p /var/log
    acpid -c /etc/acpi -l /var/log/acpid.log
    usleep 200000
    if pidof acpid >/dev/null; then say "acpid: the power button powers off"; else say "acpid did not start"; fi
fi

echo "$name" >/www/index.html
echo "${uuid:-unknown}" >/www/uuid
httpd -p 80 -h /www

say "ready"

# A root shell on the console, restarted whenever it exits.
while :; do
    setsid cttyhack sh -l
    sleep 1
done
EOF

# udhcpc event script: configures the lease (busybox udhcpc does nothing by itself).
# udhcpc exports interface, ip, mask (prefix length), subnet, broadcast, router, dns,
# domain and lease.
cat >"$ROOT/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# shellcheck disable=SC2154 # interface, ip, router, ... are set by udhcpc
say() { echo "virtkit-tiny: $*" >/dev/console; }

configure() {
    ip addr replace "$ip/${mask:-24}" broadcast "${broadcast:-+}" dev "$interface"
    ip route del default dev "$interface" 2>/dev/null
    for gw in $router; do
        ip route replace default via "$gw" dev "$interface"
        break
    done
    : >/etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
    for ns in $dns; do echo "nameserver $ns" >>/etc/resolv.conf; done
}

case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound)
        ip -4 addr flush dev "$interface"
        configure
        say "$interface $ip/${mask:-24} gw ${router:-none} lease ${lease:-?}s"
        ;;
    renew)
        configure
        ;;
    leasefail|nak)
        say "$interface: no DHCP lease yet ($1)"
        ;;
esac
exit 0
EOF

# /cgi-bin/state (busybox httpd runs the executables under cgi-bin as CGI): what the
# guest sees now, for tests that assert outcomes from inside it.
mkdir -p "$ROOT/www/cgi-bin"
cat >"$ROOT/www/cgi-bin/state" <<'EOF'
#!/bin/sh
join() { tr '\n' ',' | sed 's/,$//'; }
printf 'Content-Type: text/plain\r\n\r\n'
echo "hostname=$(hostname)"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "mem_total_kib=$(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' /proc/meminfo)"
echo "cpus=$(grep -c '^processor' /proc/cpuinfo)"
echo "modules=$(cut -d' ' -f1 /proc/modules | sort | join)"
echo "nics=$(ls /sys/class/net | grep -vx lo | join)"
echo "ipv4=$(ip -4 -o addr show | awk '$2 != "lo" { print $2 "=" $4 }' | join)"
EOF

cat >"$ROOT/etc/profile" <<'EOF'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
PS1='\h# '
EOF
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\n' >"$ROOT/etc/group"
chmod 0755 "$ROOT/init" "$ROOT/etc/udhcpc.script" "$ROOT/www/cgi-bin/state"

# Check the generated scripts parse before anything boots them.
"$BUSYBOX" sh -n "$ROOT/init" || die "generated /init has a syntax error"
"$BUSYBOX" sh -n "$ROOT/etc/udhcpc.script" || die "generated udhcpc script has a syntax error"
"$BUSYBOX" sh -n "$ROOT/www/cgi-bin/state" || die "generated cgi-bin/state has a syntax error"

log "packing initramfs"
(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z \
    | cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) \
    | gzip -9n >"$WORK/tiny-initrd.img"
cp "$VMLINUZ" "$WORK/tiny-vmlinuz"
chmod 0644 "$WORK/tiny-vmlinuz" "$WORK/tiny-initrd.img"

cat >"$WORK/tiny-image.stamp" <<EOF
script_sha256=$SCRIPT_HASH
kernel_package=$KPKG
kernel_package_version=$KPKG_VERSION
kernel_release=$KREL
modules=${LOADED[*]}
missing_modules=${MISSING[*]+"${MISSING[*]}"}
cmdline=console=ttyS0 quiet
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
chmod 0644 "$WORK/tiny-image.stamp"

# Install: drop the old stamp first, so an interruption between the renames leaves
# no stamp and the next run rebuilds; each rename itself is atomic.
rm -f "$STAMP"
mv -f "$WORK/tiny-vmlinuz" "$KERNEL_OUT"
mv -f "$WORK/tiny-initrd.img" "$INITRD_OUT"
mv -f "$WORK/tiny-image.stamp" "$STAMP"

# qemu runs as libvirt-qemu: warn if it cannot read the results (e.g. a 0700 parent).
if id libvirt-qemu >/dev/null 2>&1 && command -v runuser >/dev/null; then
    if ! runuser -u libvirt-qemu -- test -r "$KERNEL_OUT" -a -r "$INITRD_OUT"; then
        log "WARNING: user libvirt-qemu cannot read $OUTDIR (check parent directory modes)"
    fi
fi

log "built $KERNEL_OUT and $INITRD_OUT (kernel $KREL, $KPKG $KPKG_VERSION)"
print_paths
