#!/usr/bin/env bash
# boot-debian-check.sh - prove the Debian 12 cloud-init test image boots and behaves:
# DHCP lease, SSH with a cloud-init user, cloud-init done, guest agent, and a graceful
# ACPI shutdown.
#
# Usage:
#   tests/images/boot-debian-check.sh [IMAGEDIR]
#
#   IMAGEDIR defaults to ${VIRTKIT_IMAGE_DIR:-/var/lib/libvirt/images/virtkit-test}.
#   The image is built first (tests/images/build-debian-image.sh) if it is missing or
#   stale; a current image is used as is.
#
# It creates, and removes again on any exit:
#   - a throwaway domain "vk-debcheck-XXXXXX" (type 'qemu', i.e. TCG, 1 vCPU, 512 MiB,
#     direct kernel boot with root=LABEL=root console=ttyS0, <acpi/>, virtio disk, IDE
#     cdrom with the seed, virtio NIC on network "default", virtio-rng, guest-agent
#     channel, serial pty, no graphics);
#   - IMAGEDIR/.debcheck-XXXXXX/ with a qcow2 overlay backed by debian-12-cloud.qcow2,
#     the NoCloud seed ISO (label cidata) and the serial console log;
#   - a temporary directory with the SSH key pair for the user "virtkit".
# Nothing else on the host is touched (only its own domain and files are removed).
#
# Output: timings since `virsh start` (lease, SSH, cloud-init done), the guest's
# `uname -r`, and one "ok:" line per check; exit status 0 when everything passed.
#
# Environment:
#   VIRTKIT_LIBVIRT_URI      libvirt URI (default qemu:///system)
#   VIRTKIT_NETWORK          libvirt network (default "default")
#   VIRTKIT_BOOT_TIMEOUT     seconds for lease, SSH and cloud-init each (default 240)
#   VIRTKIT_KEEP_ON_FAILURE=1  keep domain and files after a failure, for debugging
#
# Needs: root (or access to qemu:///system and IMAGEDIR), virsh, qemu-img,
# genisoimage, ssh, ssh-keygen, timeout, and a running libvirtd with the network active
# (on the development host: scripts/setup-host.sh services).

set -euo pipefail

readonly IMAGEDIR="${1:-${VIRTKIT_IMAGE_DIR:-/var/lib/libvirt/images/virtkit-test}}"
readonly URI="${VIRTKIT_LIBVIRT_URI:-qemu:///system}"
readonly NETWORK="${VIRTKIT_NETWORK:-default}"
readonly BOOT_TIMEOUT="${VIRTKIT_BOOT_TIMEOUT:-240}"
readonly SHUTDOWN_TIMEOUT=60
readonly AGENT_TIMEOUT=60
readonly VIRSH_TIMEOUT=60   # one virsh call
readonly SSH_TIMEOUT=30     # one ssh command (connect + run), except cloud-init --wait
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE

log() { printf 'boot-debian-check: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }

virsh_() { timeout "$VIRSH_TIMEOUT" virsh -q -c "$URI" "$@"; }

for tool in virsh qemu-img genisoimage ssh ssh-keygen timeout; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
virsh_ uri >/dev/null 2>&1 \
    || die "cannot connect to $URI (libvirtd not running? try: scripts/setup-host.sh services)"
[[ "$(virsh_ net-info "$NETWORK" 2>/dev/null | awk '$1 == "Active:" { print $2 }')" == yes ]] \
    || die "libvirt network '$NETWORK' is not active (virsh -c $URI net-start $NETWORK)"
# Only addresses from the network's own /24 count (e.g. 192.168.122.x).
NET_PREFIX="$(virsh_ net-dumpxml "$NETWORK" \
    | sed -n "s/.*<ip [^>]*address='\([0-9]*\.[0-9]*\.[0-9]*\)\.[0-9]*'.*/\1/p" | head -n1)"
[[ -n "$NET_PREFIX" ]] || die "network '$NETWORK' has no IPv4 address"
readonly NET_PREFIX

# --- the image --------------------------------------------------------------------------
mapfile -t IMAGE < <("$HERE/build-debian-image.sh" "$IMAGEDIR")
[[ ${#IMAGE[@]} -eq 3 ]] || die "build-debian-image.sh did not print the image paths"
readonly QCOW="${IMAGE[0]}" KERNEL="${IMAGE[1]}" INITRD="${IMAGE[2]}"
for f in "$QCOW" "$KERNEL" "$INITRD"; do [[ -s "$f" ]] || die "missing $f"; done

# --- own resources and cleanup ------------------------------------------------------------
SUFFIX="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
readonly DOM="vk-debcheck-$SUFFIX"
DEFINED=0
CHILD=""
WORK=""
KEYDIR=""
FAILED=1

cleanup() {
    local rc=$?
    [[ -z "$CHILD" ]] || kill -TERM "$CHILD" 2>/dev/null || true
    if [[ "$FAILED" == 1 && "${VIRTKIT_KEEP_ON_FAILURE:-0}" == 1 ]]; then
        log "kept for debugging: domain $DOM, $WORK, $KEYDIR"
        return
    fi
    if [[ "$FAILED" == 1 && -n "$WORK" && -s "$WORK/console.log" ]]; then
        log "last lines of the serial console:"
        tail -n 30 "$WORK/console.log" | sed 's/^/  | /' >&2 || true
    fi
    if [[ "$DEFINED" == 1 ]]; then
        if [[ "$(virsh_ domstate "$DOM" 2>/dev/null || true)" != "shut off" ]]; then
            virsh_ destroy "$DOM" >/dev/null 2>&1 || true
        fi
        virsh_ undefine "$DOM" >/dev/null 2>&1 || log "WARNING: could not undefine $DOM"
    fi
    [[ -z "$WORK" ]] || rm -rf -- "$WORK"
    [[ -z "$KEYDIR" ]] || rm -rf -- "$KEYDIR"
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The overlay, seed and console log live next to the image (qemu runs as libvirt-qemu
# and must reach them); the private key lives in a private directory.
WORK="$(mktemp -d "$IMAGEDIR/.debcheck-XXXXXX")"
chmod 0755 "$WORK"
KEYDIR="$(mktemp -d "${TMPDIR:-/tmp}/virtkit-debcheck.XXXXXX")"
readonly WORK KEYDIR
readonly KEY="$KEYDIR/id_ed25519" OVERLAY="$WORK/disk.qcow2" SEED="$WORK/seed.iso"

ssh-keygen -q -t ed25519 -N '' -C "virtkit@$DOM" -f "$KEY"
qemu-img create -q -f qcow2 -b "$QCOW" -F qcow2 "$OVERLAY"

mkdir "$WORK/seed"
INSTANCE_ID="$DOM-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
cat >"$WORK/seed/meta-data" <<EOF
instance-id: $INSTANCE_ID
local-hostname: $DOM
EOF
cat >"$WORK/seed/user-data" <<EOF
#cloud-config
users:
  - name: virtkit
    gecos: virtkit test user
    shell: /bin/bash
    groups: [sudo]
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    lock_passwd: true
    ssh_authorized_keys:
      - $(cat "$KEY.pub")
EOF
timeout 60 genisoimage -quiet -output "$SEED" -V cidata -J -r \
    "$WORK/seed/user-data" "$WORK/seed/meta-data"
rm -rf "$WORK/seed"

cat >"$WORK/domain.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <description>virtkit boot-debian-check.sh (throwaway)</description>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$INITRD</initrd>
    <cmdline>root=LABEL=root console=ttyS0</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$OVERLAY'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='$SEED'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='$NETWORK'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='$WORK/console.log' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
    <memballoon model='virtio'/>
  </devices>
</domain>
EOF

virsh_ define "$WORK/domain.xml" >/dev/null || die "virsh define failed"
DEFINED=1

# --- boot ---------------------------------------------------------------------------------
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
elapsed_s() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%d", b - a }'; }

virsh_ start "$DOM" >/dev/null || die "virsh start $DOM failed"
T0="$(now)"
log "started $DOM (instance-id $INSTANCE_ID); waiting up to ${BOOT_TIMEOUT}s for each step"

running_or_die() {
    [[ "$(virsh_ domstate "$DOM" 2>/dev/null || true)" == running ]] \
        || die "$DOM is no longer running ($(virsh_ domstate --reason "$DOM" 2>&1 || true))"
}

IP=""
while [[ -z "$IP" ]]; do
    IP="$(virsh_ domifaddr "$DOM" --source lease 2>/dev/null \
        | awk -v p="$NET_PREFIX." '$3 == "ipv4" && index($4, p) == 1 { sub(/\/.*/, "", $4); print $4; exit }' \
        || true)"
    [[ -z "$IP" ]] || break
    [[ "$(elapsed_s "$T0")" -lt "$BOOT_TIMEOUT" ]] || die "no DHCP lease within ${BOOT_TIMEOUT}s"
    running_or_die
    sleep 1
done
T_LEASE="$(since "$T0")"
[[ "$IP" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ && "$IP" == "$NET_PREFIX".* ]] \
    || die "unexpected address '$IP'"
log "lease $IP after ${T_LEASE}s"

SSH_OPTS=(
    -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o ConnectTimeout=5 -o ServerAliveInterval=10 -o ServerAliveCountMax=3
)
guest() { # CMD: run CMD in the guest as virtkit, bounded; in the background, so that
    # a signal is handled at once rather than after ssh returns
    local rc=0
    timeout "$SSH_TIMEOUT" ssh "${SSH_OPTS[@]}" "virtkit@$IP" "$@" </dev/null &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

until guest true 2>/dev/null; do
    [[ "$(elapsed_s "$T0")" -lt "$BOOT_TIMEOUT" ]] || die "no SSH as virtkit@$IP within ${BOOT_TIMEOUT}s"
    running_or_die
    sleep 2
done
T_SSH="$(since "$T0")"
log "SSH as virtkit@$IP after ${T_SSH}s"

# SSH answers before cloud-init has finished: wait for it.
left=$((BOOT_TIMEOUT - $(elapsed_s "$T0")))
[[ "$left" -gt 10 ]] || left=10
# In the background, so that a signal is handled at once rather than after the wait.
timeout "$left" ssh "${SSH_OPTS[@]}" "virtkit@$IP" cloud-init status --wait \
    </dev/null >"$WORK/cloud-init-status" 2>&1 &
CHILD=$!
wait "$CHILD" || true
CHILD=""
CI_STATUS="$(tr -d '.' <"$WORK/cloud-init-status" | sed -n 's/^status: //p')"
T_CI="$(since "$T0")"
[[ "$CI_STATUS" == "done" ]] || {
    guest cloud-init status --long >&2 || true
    die "cloud-init status after ${T_CI}s: '${CI_STATUS:-timeout}' (expected done)"
}
log "cloud-init done after ${T_CI}s"

KREL="$(guest uname -r)"
HOSTNAME_G="$(guest hostname)"
[[ "$HOSTNAME_G" == "$DOM" ]] || die "guest hostname is '$HOSTNAME_G', expected $DOM"
guest sudo -n true || die "virtkit has no passwordless sudo"
MID="$(guest cat /etc/machine-id)"
[[ "$MID" =~ ^[0-9a-f]{32}$ ]] || die "guest has no machine-id ('$MID')"
HOSTKEY="$(guest ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)" \
    || die "guest has no ed25519 host key"
ROOTSRC="$(guest findmnt -n -o SOURCE,OPTIONS /)"
[[ "$ROOTSRC" == /dev/vda\ rw* ]] || die "root filesystem is '$ROOTSRC', expected /dev/vda rw"
RESOLV="$(guest cat /etc/resolv.conf | grep -c '^nameserver' || true)"
[[ "$RESOLV" -ge 1 ]] || die "guest has no nameserver in /etc/resolv.conf"
SYSSTATE="$(guest systemctl is-system-running || true)"
FAILED_UNITS="$(guest systemctl --failed --plain --no-legend | awk '{ print $1 }' | tr '\n' ' ' || true)"

# Where the boot time goes (informational).
{
    echo "guest boot profile:"
    guest systemd-analyze time 2>/dev/null | head -n1 || true
    guest systemd-analyze critical-chain --no-pager ssh.service 2>/dev/null | sed -n '3,12p' || true
    guest cloud-init analyze blame 2>/dev/null | sed -n '2,7p' || true
} | sed 's/^/  /' >&2

ok "lease $IP after ${T_LEASE}s"
ok "ssh virtkit@$IP after ${T_SSH}s"
ok "cloud-init done after ${T_CI}s"
ok "uname -r: $KREL"
ok "hostname $HOSTNAME_G, machine-id $MID, passwordless sudo"
ok "root ${ROOTSRC%% *} (${ROOTSRC##* }), nameservers: $RESOLV"
ok "host key: $HOSTKEY"
if [[ "$SYSSTATE" == running ]]; then
    ok "systemctl is-system-running: running"
else
    log "WARNING: systemctl is-system-running: $SYSSTATE; failed units: ${FAILED_UNITS:-none}"
fi

# --- guest agent --------------------------------------------------------------------------
T_AG="$(now)"
AGENT_IP=""
while :; do
    AGENT_IP="$(virsh_ domifaddr "$DOM" --source agent 2>/dev/null \
        | awk -v ip="$IP" '$3 == "ipv4" && index($4, ip "/") == 1 { print $4; exit }' || true)"
    [[ -z "$AGENT_IP" ]] || break
    [[ "$(elapsed_s "$T_AG")" -lt "$AGENT_TIMEOUT" ]] \
        || die "virsh domifaddr --source agent did not report $IP within ${AGENT_TIMEOUT}s"
    sleep 1
done
ok "guest agent: domifaddr --source agent reports $AGENT_IP"

# --- graceful shutdown (ACPI power button) --------------------------------------------------
# --mode acpi: with an agent connected, plain `virsh shutdown` would ask the agent
# instead, and not prove the guest honours the ACPI power button.
T_SD="$(now)"
virsh_ shutdown "$DOM" --mode acpi >/dev/null || die "virsh shutdown --mode acpi failed"
while [[ "$(virsh_ domstate "$DOM" 2>/dev/null || true)" != "shut off" ]]; do
    if [[ "$(elapsed_s "$T_SD")" -ge "$SHUTDOWN_TIMEOUT" ]]; then
        die "$DOM did not power off within ${SHUTDOWN_TIMEOUT}s of an ACPI shutdown"
    fi
    sleep 1
done
T_OFF="$(since "$T_SD")"
REASON="$(virsh_ domstate --reason "$DOM" || true)"
[[ "$REASON" == "shut off (shutdown)" ]] || die "$DOM stopped with '$REASON', expected a guest shutdown"
ok "ACPI shutdown: powered off after ${T_OFF}s ($REASON)"

FAILED=0
printf 'timings: lease=%ss ssh=%ss cloud-init=%ss shutdown=%ss kernel=%s\n' \
    "$T_LEASE" "$T_SSH" "$T_CI" "$T_OFF" "$KREL"
