#!/usr/bin/env bash
# Prepare this machine for virtkit.guests development, tests and the demo.
#
#   scripts/setup-host.sh [packages|venv|cores|collection|services|all]
#
# Idempotent and cheap on rerun: it installs only what is missing and starts only
# what is not running. Works as root on Debian/Ubuntu, with or without systemd.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VIRTKIT_VENV:-$ROOT/.venv}
BUILD=${VIRTKIT_BUILD:-$ROOT/.build}
PYTHON=${PYTHON:-python3}

APT_PACKAGES=(
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-daemon-driver-lxc
  libvirt-clients libvirt-dev pkg-config gcc qemu-system-x86 qemu-utils
  lxc lxc-templates distro-info busybox-static cpio genisoimage libxml2-utils
  dnsmasq-base iptables debootstrap rsync git openssh-server openssh-client
  shellcheck python3 python3-venv python3-dev xz-utils gzip make  # python3-dev: libvirt-python builds from source
  lxc-dev  # benchmarks only: the peers' lxc_container needs the PyPI lxc binding, built against it
  ovmf swtpm swtpm-tools  # UEFI guests (firmware descriptors in /usr/share/qemu/firmware) and emulated TPMs
)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

have_systemd() { [ -d /run/systemd/system ]; }

packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "packages missing (${missing[*]}) and not root: run as root or install them"
  command -v apt-get >/dev/null || die "packages missing (${missing[*]}) and apt-get not found (Debian/Ubuntu only)"
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start daemons (sshd, dnsmasq ...): we start what we need.
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 0755 "$policy" && own_policy=1
  fi
  local rc=0
  { timeout 600 apt-get update -qq &&
    timeout 1200 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  [ -n "$own_policy" ] && rm -f "$policy"
  [ "$rc" -eq 0 ] || die "apt-get failed (exit $rc) installing: ${missing[*]}"
}

# Unprivileged LXC containers need a subordinate id range for root; add the usual one
# when root has none (what lxc_host does on a real hypervisor).
subids() {
  local f
  for f in /etc/subuid /etc/subgid; do
    [ -f "$f" ] || touch "$f"
    grep -q '^root:' "$f" || { log "adding root:100000:65536 to $f"; echo 'root:100000:65536' >> "$f"; }
  done
}

venv() {
  local stamp="$VENV/.virtkit-requirements" want
  want=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "creating the virtualenv $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  timeout 1200 "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
  echo "$want" > "$stamp"
}

# The oldest ansible-core releases meta/runtime.yml admits, each in its own virtualenv
# ($BUILD/cores/<X.Y>, latest patch release, with the controller's Python requirements and
# pytest), for the tests that must hold on every supported core (tests/integration/targets/
# guest_unsafe_strings, make unit-cores). The default venv has the newest core.
CORES=(2.17 2.18)

cores() {
  local v dir stamp want
  for v in "${CORES[@]}"; do
    dir="$BUILD/cores/$v"
    stamp="$dir/.virtkit-requirements"
    want=$( { echo "ansible-core $v"; cat "$ROOT/requirements.txt"; } | sha256sum | cut -d' ' -f1)
    if [ -x "$dir/bin/ansible-playbook" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
      continue
    fi
    log "creating the ansible-core $v virtualenv $dir"
    [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
    # requirements.txt names ansible-core>=2.17; the second requirement pins the series.
    timeout 1200 "$dir/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.txt" \
      "ansible-core>=$v.0,<${v%.*}.$(( ${v#*.} + 1 ))" pytest
    echo "$want" > "$stamp"
  done
}

collection() {
  # Ansible finds the collection through ANSIBLE_COLLECTIONS_PATH=$BUILD/collections.
  local dir="$BUILD/collections/ansible_collections/virtkit"
  mkdir -p "$dir"
  if [ "$(readlink "$dir/guests" 2>/dev/null)" != "$ROOT" ]; then
    rm -rf "$dir/guests"
    ln -s "$ROOT" "$dir/guests"
  fi
  get_pip_standin
}

# ansible-test bootstraps pip in each venv it makes by downloading get-pip.py from a
# host that is not reachable here; it reads a cached copy first. This stand-in uses
# ensurepip and then pip itself, which needs only PyPI. A real get-pip.py already in
# the cache is kept; an older stand-in is replaced.
get_pip_standin() {
  local cache="${HOME}/.ansible/test/cache" at versions v f tmp
  at=$("$VENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))') \
    || die "ansible-test is not installed in $VENV (run: $0 venv)"
  # The pip versions ansible-test pins (get_venv_packages: pip='X.Y').
  versions=$(grep -hoE "pip=['\"][0-9][0-9.]*['\"]" "$at/_internal/python_requirements.py" \
    | sed -E "s/pip=['\"]([0-9.]+)['\"]/\\1/" | sort -u)
  [ -n "$versions" ] || die "cannot find the pip version ansible-test pins in $at/_internal/python_requirements.py"
  mkdir -p "$cache"
  tmp=$(mktemp "$cache/.get_pip.XXXXXX")
  cat > "$tmp" <<'PY'
# virtkit.guests stand-in for get-pip.py (virtkit-get-pip-standin 2).
# ansible-test runs it in each new virtual environment with pip options and the packages
# to install as arguments; the real get-pip.py lives on a host that is unreachable here.
# Like get-pip.py: install the packages asked for (from PyPI), and neither setuptools nor
# wheel when told --no-setuptools / --no-wheel (ensurepip installs setuptools on < 3.12).
import subprocess
import sys
from importlib import metadata

argv = sys.argv[1:]
skip = {'--no-setuptools': 'setuptools', '--no-wheel': 'wheel'}
unwanted = [skip[a] for a in argv if a in skip]
args = [a for a in argv if a not in skip]
try:
    import ensurepip  # noqa: F401 pylint: disable=unused-import
except ImportError:
    sys.exit('get-pip stand-in: %s has no ensurepip (Debian/Ubuntu: install python3-venv)' % sys.executable)
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'])
if args:
    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check'] + args)
remove = []
for name in unwanted:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        continue
    remove.append(name)
if remove:
    subprocess.check_call([sys.executable, '-m', 'pip', 'uninstall', '-y', '-q', '--disable-pip-version-check'] + remove)
PY
  for v in $versions; do
    f="$cache/get_pip_${v//./_}.py"
    if [ -f "$f" ]; then
      grep -q virtkit "$f" || continue   # a real get-pip.py: keep it
      cmp -s "$tmp" "$f" && continue
    fi
    log "installing the ansible-test get-pip stand-in $f"
    cp "$tmp" "$f.new" && chmod 644 "$f.new" && mv -f "$f.new" "$f"
  done
  rm -f "$tmp"
}

start_daemon() {  # name, check-pattern, command...
  local name=$1; shift
  if pgrep -x "$name" >/dev/null; then return 0; fi
  log "starting $name"
  "$@"
}

# Without udev nothing gives /dev/kvm its usual owner (root:kvm, 0660). libvirt then sees
# KVM as unusable for the qemu user, finds its cached QEMU capabilities stale on every
# call and re-probes QEMU (seconds per define or capabilities call). Do what udev does.
kvm_device() {
  [ -c /dev/kvm ] && getent group kvm >/dev/null || return 0
  if [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]; then
    log "giving /dev/kvm its udev permissions (root:kvm 0660)"
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
}

# libvirt runs swtpm as its swtpm_user (qemu.conf; "tss" unless set), and swtpm_localca
# must then write its lock and serial-number files in /var/lib/swtpm-localca. A libvirtd
# that ran swtpm as root (one started before swtpm-tools created tss) leaves those files
# root's, and every guest with an emulated TPM then fails to start: give them back.
swtpm_localca() {
  local dir=/var/lib/swtpm-localca user
  [ -d "$dir" ] || return 0
  user=$(sed -nE 's/^[[:space:]]*swtpm_user[[:space:]]*=[[:space:]]*"([^"]+)".*/\1/p' \
    /etc/libvirt/qemu.conf 2>/dev/null | tail -n 1)
  user=${user:-tss}
  [ "$user" != root ] && id -u "$user" >/dev/null 2>&1 || return 0
  if [ -n "$(find "$dir" ! -user "$user" -print -quit)" ]; then
    log "giving $dir back to $user, the user libvirt runs swtpm as"
    chown -R "$user" "$dir"
  fi
}

services() {
  [ "$(id -u)" -eq 0 ] || die "starting services needs root"
  kvm_device
  swtpm_localca
  if have_systemd; then
    systemctl start virtlogd.socket libvirtd.service 2>/dev/null || systemctl start libvirtd
    systemctl start lxc-net 2>/dev/null || true
  else
    mkdir -p /run/libvirt /var/run/libvirt
    start_daemon virtlogd virtlogd -d
    start_daemon libvirtd libvirtd -d
  fi
  # Wait (bounded) until libvirtd answers.
  local i
  for i in $(seq 1 50); do
    virsh -q -c qemu:///system version >/dev/null 2>&1 && break
    [ "$i" -eq 50 ] && die "libvirtd did not answer on qemu:///system within 10 s"
    sleep 0.2
  done
  if ! virsh -q -c qemu:///system net-info default >/dev/null 2>&1; then
    log "defining libvirt's default network"
    virsh -q -c qemu:///system net-define /usr/share/libvirt/networks/default.xml >/dev/null
  fi
  if virsh -q -c qemu:///system net-info default | grep -Eq '^Active:[[:space:]]+no'; then
    log "starting libvirt's default network"
    virsh -q -c qemu:///system net-start default >/dev/null
  fi
  virsh -q -c qemu:///system net-autostart default >/dev/null 2>&1 || true
  # The bridge and lxc-net's marker outlive its dnsmasq when the processes of an earlier
  # session are ended: judge lxc-net by its dnsmasq, and clear the stale marker and pid
  # file (never kill by a pid that may have been reused) before starting it again.
  if [ -x /usr/libexec/lxc/lxc-net ] && ! pgrep -F /run/lxc/dnsmasq.pid -x dnsmasq >/dev/null 2>&1; then
    log "starting LXC's bridge and its DHCP server (lxc-net)"
    rm -f /run/lxc/network_up /run/lxc/dnsmasq.pid
    /usr/libexec/lxc/lxc-net start
  fi
}

case "${1:-all}" in
  packages) packages ;;
  venv) venv ;;
  cores) cores ;;
  collection) collection ;;
  services) services ;;
  all) packages; subids; venv; cores; collection; services ;;
  *) die "usage: $0 [packages|venv|cores|collection|services|all]" ;;
esac
