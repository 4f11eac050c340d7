#!/usr/bin/env bash
# The libvirt modules over a real remote URI: this host's libvirtd reached as
# qemu+ssh://root@127.0.0.1:<port>/system through a loopback sshd that this script starts
# (generated host key, throwaway client key, 127.0.0.1 on a free port: the recipe of
# tests/integration/targets/role_guests/runme.sh, copied, as that script has no shared
# helper) and stops by its PID on any exit.
#
# The URI names the client key (?keyfile=) and virt-ssh-helper as the proxy on the far side
# (&proxy=native; libvirt 9.0's default, proxy=auto, also finds it, and netcat is not
# installed here). Host keys are checked strictly, without no_verify=1: &command= names a
# wrapper that runs ssh with -F our ssh_config, whose known_hosts holds exactly the
# generated host key, so nothing touches root's ~/.ssh. That config also multiplexes
# (ControlMaster): every module run still opens its own libvirt connection, as an SSH
# session running virt-ssh-helper, but skips the key exchange (about 0.4 s instead of 1.1 s
# each on a loaded 2-core host). The URI with a stranger's key goes through a wrapper
# without multiplexing, so it never rides on an authenticated master.
#
# remote.yml runs every libvirt module through the URI (cleanup in its always: section);
# cleanup.yml, over the local URI, is the safety net after sshd is gone.
set -euo pipefail
cd "$(dirname "$0")"
if [ -n "${INVENTORY_PATH:-}" ]; then set -- -i "$INVENTORY_PATH" "$@"; fi
ARGS=("$@")

SSHDIR=$(mktemp -d /tmp/vk-test-remote-ssh.XXXXXX)
# The pool, the guest's disks and the seed live here (libvirt's qemu can read it).
SCRATCH=$(mktemp -d /var/lib/libvirt/images/vk-test-remote.XXXXXX)
chmod 0755 "$SCRATCH"
cleanup() {
  local rc=$?
  if [ -S "$SSHDIR/mux" ]; then ssh -F "$SSHDIR/ssh_config" -p "$PORT" -O exit 127.0.0.1 2>/dev/null || true; fi
  if [ -f "$SSHDIR/sshd.pid" ]; then kill "$(cat "$SSHDIR/sshd.pid")" 2>/dev/null || true; fi
  ansible-playbook cleanup.yml -e "vk_scratch=$SCRATCH" "${ARGS[@]}" >"$SSHDIR/cleanup.log" 2>&1 \
    || { cat "$SSHDIR/cleanup.log"; echo "cleanup failed"; rc=1; }
  rm -rf "$SSHDIR" "$SCRATCH"
  exit "$rc"
}
PORT=
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -C vk-test-remote-host -f "$SSHDIR/host_key"
ssh-keygen -q -t ed25519 -N '' -C vk-test-remote-client -f "$SSHDIR/client_key"
ssh-keygen -q -t ed25519 -N '' -C vk-test-remote-stranger -f "$SSHDIR/stranger_key"
cp "$SSHDIR/client_key.pub" "$SSHDIR/authorized_keys"
mkdir -p /run/sshd
# A free port on 127.0.0.1 (asked of the kernel; tried again should another process take it first).
for attempt in 1 2 3 4 5; do
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$SSHDIR/sshd_config" <<SSHD
Port $PORT
ListenAddress 127.0.0.1
HostKey $SSHDIR/host_key
AuthorizedKeysFile $SSHDIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PidFile $SSHDIR/sshd.pid
StrictModes no
UsePAM no
LogLevel VERBOSE
SSHD
  if /usr/sbin/sshd -f "$SSHDIR/sshd_config" -E "$SSHDIR/sshd.log"; then break; fi
  [ "$attempt" -lt 5 ] || { cat "$SSHDIR/sshd.log"; echo "sshd did not start"; exit 1; }
done
for _ in $(seq 1 50); do (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.2; done
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$SSHDIR/host_key.pub")" >"$SSHDIR/known_hosts"
cat >"$SSHDIR/ssh_config" <<SSHC
Host 127.0.0.1
  UserKnownHostsFile $SSHDIR/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  IdentitiesOnly yes
  ConnectTimeout 10
  ControlMaster auto
  ControlPath $SSHDIR/mux
  ControlPersist 60
SSHC
printf '#!/bin/sh\nexec ssh -F %s "$@"\n' "$SSHDIR/ssh_config" >"$SSHDIR/ssh"
printf '#!/bin/sh\nexec ssh -F %s -o ControlPath=none "$@"\n' "$SSHDIR/ssh_config" >"$SSHDIR/ssh-nomux"
chmod 0755 "$SSHDIR/ssh" "$SSHDIR/ssh-nomux"

URI="qemu+ssh://root@127.0.0.1:$PORT/system?keyfile=$SSHDIR/client_key&command=$SSHDIR/ssh&proxy=native"
BAD_KEY_URI="qemu+ssh://root@127.0.0.1:$PORT/system?keyfile=$SSHDIR/stranger_key&command=$SSHDIR/ssh-nomux&proxy=native"
# (a vars file: the URIs contain '=' and '&')
cat >"$SSHDIR/vars.yml" <<VARS
vk_uri: "$URI"
vk_bad_key_uri: "$BAD_KEY_URI"
vk_scratch: "$SCRATCH"
VARS

start=$SECONDS
ansible-playbook remote.yml -e "@$SSHDIR/vars.yml" "$@"
echo "remote.yml: $((SECONDS - start)) s"

# The modules really went through sshd: every libvirt connection is one SSH session
# (virt-ssh-helper), and the stranger's key was refused.
sessions=$(grep -c 'Starting session: command for root' "$SSHDIR/sshd.log" || true)
echo "sshd: $sessions sessions"
[ "$sessions" -ge 50 ] || { cat "$SSHDIR/sshd.log"; echo "expected at least 50 SSH sessions by the modules, got $sessions"; exit 1; }
grep -q 'Failed publickey for root' "$SSHDIR/sshd.log" || { cat "$SSHDIR/sshd.log"; echo "sshd did not refuse the stranger's key"; exit 1; }
