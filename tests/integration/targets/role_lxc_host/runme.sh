#!/usr/bin/env bash
# virtkit.guests.lxc_host on this host, the way users run it (ansible-playbook):
# bad input fails with one line before anything changes; a check run changes no file; apply;
# the rerun and a check-mode rerun report changed=0 in the recap; lxcbr0 keeps running with
# 10.0.3.1 throughout (other tests use it). The files the role edits are restored at the end.
set -euo pipefail
cd "$(dirname "$0")"
# ansible-test names its inventory (testhost) in INVENTORY_PATH; by hand, pass -i yourself.
if [ -n "${INVENTORY_PATH:-}" ]; then set -- -i "$INVENTORY_PATH" "$@"; fi
LOG=$(mktemp -d)
FILES=(/etc/default/lxc-net /etc/lxc/default.conf /etc/subuid /etc/subgid)
for f in "${FILES[@]}"; do
  if [ -e "$f" ]; then cp -a "$f" "$LOG/$(echo "$f" | tr / _)"; fi
done
cleanup() {
  local f b
  for f in "${FILES[@]}"; do
    b="$LOG/$(echo "$f" | tr / _)"
    if [ -e "$b" ]; then cp -a "$b" "$f"; else rm -f "$f"; fi
  done
  rm -rf "$LOG"
}
trap cleanup EXIT

# run NAME WANT ARGS... and expect_msg NAME MESSAGE:
source ../setup_playbook_runs/playbook_runs.sh
sums() { sha256sum "${FILES[@]}" 2>/dev/null || true; }
bridge_ok() {
  ip -4 -o addr show dev lxcbr0 | grep -q ' 10\.0\.3\.1/24 ' || { echo "lxcbr0 lost 10.0.3.1/24"; exit 1; }
}

bridge_ok
before=$(sums)
run bad_range fail -e lxc_host_dhcp_range=10.0.3.2 "$@"
expect_msg bad_range "lxc_host_dhcp_range must be two IPv4 addresses separated by a comma such as 10.0.3.2,10.0.3.254, got '10.0.3.2'"
run bad_bridge fail -e lxc_host_bridge=this-name-is-far-too-long "$@"
expect_msg bad_bridge "lxc_host_bridge must be 1-15 characters of letters, digits, '_', '.', '-', got 'this-name-is-far-too-long'"
run bad_conf fail -e '{"lxc_host_default_conf_extra": {"net.0.type": "veth"}}' "$@"
expect_msg bad_conf "lxc_host_default_conf_extra must map LXC keys (lxc.*) to values"
run missing_bridge fail -e lxc_host_bridge_mode=existing -e lxc_host_bridge=vk-test-nobr "$@"
expect_msg missing_bridge "lxc_host: lxc_host_bridge_mode is 'existing' but the bridge vk-test-nobr does not exist on testhost"
[ "$(sums)" = "$before" ] || { echo "bad input changed a file"; exit 1; }

run check any --check "$@"
[ "$(sums)" = "$before" ] || { echo "the check run changed a file"; exit 1; }
run apply any "$@"
bridge_ok
grep -qx 'LXC_ADDR="10.0.3.1"' /etc/default/lxc-net
grep -qx 'LXC_DHCP_RANGE="10.0.3.2,10.0.3.254"' /etc/default/lxc-net
grep -qx 'lxc.net.0.link = lxcbr0' /etc/lxc/default.conf
[ "$(grep -c '^lxc\.net\.0\.link' /etc/lxc/default.conf)" -eq 1 ]
grep -qx 'root:100000:65536' /etc/subuid
grep -qx 'root:100000:65536' /etc/subgid
[ "$(grep -c '^root:100000:65536$' /etc/subuid)" -eq 1 ]
[ -d /var/cache/lxc ]
run rerun changed=0 "$@"
run check_rerun changed=0 --check "$@"
# lxc-net's dnsmasq dies (as when the processes of an earlier session are ended): the
# bridge and lxc-net's marker stay, and the role must judge lxc-net by its dnsmasq.
if [ ! -d /run/systemd/system ]; then
  pid=$(cat /run/lxc/dnsmasq.pid)
  if [ "$(cat "/proc/$pid/comm")" != dnsmasq ] || ! grep -qa -- '--interface=lxcbr0' "/proc/$pid/cmdline"; then
    echo "pid $pid is not lxc-net's dnsmasq"; exit 1
  fi
  kill "$pid"
  for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  [ ! -d "/proc/$pid" ] || { echo "dnsmasq $pid did not stop"; exit 1; }
  run dhcp_dead changed=1 "$@"
  pgrep -F /run/lxc/dnsmasq.pid -x dnsmasq >/dev/null || { echo "lxc-net's dnsmasq was not started again"; exit 1; }
  bridge_ok
  run dhcp_back changed=0 "$@"
fi
# An extra default.conf key is added once, then left alone.
run extra_key changed=1 -e '{"lxc_host_default_conf_extra": {"lxc.start.auto": "0"}}' "$@"
grep -qx 'lxc.start.auto = 0' /etc/lxc/default.conf
run extra_key_rerun changed=0 -e '{"lxc_host_default_conf_extra": {"lxc.start.auto": "0"}}' "$@"
bridge_ok
