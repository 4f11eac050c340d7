#!/usr/bin/env bash
# virtkit.guests.kvm_host on this host, the way users run it (ansible-playbook):
# bad input fails with one line before anything changes; check run; apply; the rerun and a
# check-mode rerun report changed=0 in the recap. The `default` NAT network is used with its
# defaults (it must stay unchanged); the pool is a vk-test- pool of its own, removed at the end.
set -euo pipefail
cd "$(dirname "$0")"
# ansible-test names its inventory (testhost) in INVENTORY_PATH; by hand, pass -i yourself.
if [ -n "${INVENTORY_PATH:-}" ]; then set -- -i "$INVENTORY_PATH" "$@"; fi
LOG=$(mktemp -d)
ARGS=("$@")
cleanup() {
  ansible-playbook cleanup.yml "${ARGS[@]}" >"$LOG/cleanup.log" 2>&1 || { cat "$LOG/cleanup.log"; exit 1; }
  rm -rf "$LOG"
}
trap cleanup EXIT

# run NAME WANT ARGS... and expect_msg NAME MESSAGE:
source ../setup_playbook_runs/playbook_runs.sh

# Bad input: one clear line each, and nothing touched (the pool is not created).
run bad_path fail -e kvm_host_pool_path=relative/dir "$@"
expect_msg bad_path "kvm_host_pool_path must be an absolute path, got relative/dir"
run bad_address fail -e kvm_host_network_address=192.168.122.1 "$@"
expect_msg bad_address "kvm_host_network_address must be an IPv4 address with a prefix length such as 192.168.122.1/24, got '192.168.122.1'"
run bad_choice fail -e kvm_host_nested=maybe "$@"
expect_msg bad_choice "kvm_host_nested"
run require_kvm fail -e kvm_host_require_kvm=true -e kvm_host_kvm_usable=unusable "$@"
expect_msg require_kvm "kvm_host: KVM acceleration is not usable on testhost: kvm_host_kvm_usable is 'unusable' (set kvm_host_require_kvm: false to fall back to qemu/TCG)"
ansible-playbook verify.yml -e expect_pool=absent "$@" >"$LOG/verify0.log" 2>&1 || { cat "$LOG/verify0.log"; exit 1; }

# A libvirtd that ran swtpm as root leaves swtpm's local CA files to root (as happens when
# swtpm-tools is installed while libvirtd runs): the role must give them back to tss.
if [ -f /var/lib/swtpm-localca/certserial ]; then chown root /var/lib/swtpm-localca/certserial; fi

# Check run (changes nothing), apply, rerun, check-mode rerun.
run check any --check "$@"
ansible-playbook verify.yml -e expect_pool=absent "$@" >"$LOG/verify1.log" 2>&1 || { cat "$LOG/verify1.log"; exit 1; }
run apply any "$@"
ansible-playbook verify.yml -e expect_pool=running "$@" >"$LOG/verify2.log" 2>&1 || { cat "$LOG/verify2.log"; exit 1; }
run rerun changed=0 "$@"
run check_rerun changed=0 --check "$@"
run forced_qemu changed=0 -e kvm_host_kvm_usable=unusable -e expect_virt_type=qemu "$@"
# Nested virtualization, in check mode only (this target does not change the host's modprobe
# configuration): it would write the file, and nothing else would change.
if [ ! -e /etc/modprobe.d/virtkit-kvm-nested.conf ]; then
  run nested_check changed=1 --check --diff -e kvm_host_nested=enabled "$@"
  expect_msg nested_check "options kvm_intel nested=1"
  [ ! -e /etc/modprobe.d/virtkit-kvm-nested.conf ] || { echo "the check run wrote the modprobe file"; exit 1; }
fi
