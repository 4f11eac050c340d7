#!/usr/bin/env bash
# virtkit.guests.guests the way users run it (ansible-playbook virtkit.guests.provision and
# .teardown): one tiny KVM guest (overlay on a small base volume) and one busybox container.
# check run creates nothing -> apply, and the next plays of the same playbook reach the container
# through its added host (virtkit.guests.lxc) and the VM's web server on its address -> rerun and
# check rerun report changed=0 -> the same through SSH to the hypervisor (a loopback sshd:
# module over SSH, lxc-attach over SSH, a ProxyCommand for the VM) -> a bad guest entry fails with one line before anything is created
# -> both guests restarted, the rerun finds them from inside on their addresses -> one guest failing does not stop the others, then the role fails naming it
# -> teardown (remove_storage honoured; the shared base stays) -> teardown rerun changed=0.
# Everything is named vk-test-role-*; cleanup.yml removes it on any exit.
set -euo pipefail
cd "$(dirname "$0")"
# ansible-test names its inventory (testhost) in INVENTORY_PATH; by hand, pass -i yourself.
if [ -n "${INVENTORY_PATH:-}" ]; then set -- -i "$INVENTORY_PATH" "$@"; fi
# In check runs the guests do not exist yet, so the plays on their groups match no host:
# ansible-test makes that an error; here it is expected.
export ANSIBLE_HOST_PATTERN_MISMATCH=warning
LOG=$(mktemp -d)
WORK=/tmp/vk-test-role
BASE=$WORK/vk-test-role-base.raw
ARGS=("$@")  # the trap may fire inside a function, where "$@" is that function's arguments
cleanup() {
  if [ -f "$WORK/sshd.pid" ]; then kill "$(cat "$WORK/sshd.pid")" 2>/dev/null || true; fi
  ansible-playbook cleanup.yml -e @guests.yml -e vk_base_checksum=none "${ARGS[@]}" >"$LOG/cleanup.log" 2>&1 \
    || { cat "$LOG/cleanup.log"; echo "cleanup failed"; }
  rm -rf "$LOG"
}
trap cleanup EXIT

run() {  # name, playbook, expected "changed=0", "any" or "fail", extra ansible-playbook args...
  local name=$1 playbook=$2 want=$3; shift 3
  local rc=0 start=$SECONDS
  ansible-playbook "$playbook" -e @guests.yml -e "vk_base_checksum=$SUM" "$@" >"$LOG/$name.log" 2>&1 || rc=$?
  echo "$name: rc=$rc ($((SECONDS - start)) s)"
  grep -E '^[A-Za-z0-9_.-]+ +: ok=' "$LOG/$name.log" | sed 's/^/  /' || true
  if [ "$want" = fail ]; then
    [ "$rc" -ne 0 ] || { cat "$LOG/$name.log"; echo "$name: expected a failure"; exit 1; }
  else
    [ "$rc" -eq 0 ] || { cat "$LOG/$name.log"; echo "$name: failed"; exit 1; }
    if [ "$want" = changed=0 ] && grep -E '^[A-Za-z0-9_.-]+ +: ok=' "$LOG/$name.log" | grep -vq ' changed=0 '; then
      cat "$LOG/$name.log"; echo "$name: expected changed=0 on every host"; exit 1
    fi
  fi
}
expect_msg() {  # name, message
  grep -qF -- "$2" "$LOG/$1.log" || { cat "$LOG/$1.log"; echo "$1: message not found: $2"; exit 1; }
}
exists_vm() { virsh -q dominfo "$1" >/dev/null 2>&1; }
exists_ct() { lxc-info -n "$1" >/dev/null 2>&1; }
nothing() {  # names...: none of them exists as a domain or a container
  local n
  for n in "$@"; do
    if exists_vm "$n" || exists_ct "$n"; then echo "$n exists but should not"; exit 1; fi
  done
}
volumes() { virsh -q vol-list vk-test-role 2>/dev/null | awk '{print $1}' | sort | tr '\n' ' '; }

SUM=none
run prepare prepare.yml any "$@"
SUM=sha256:$(sha256sum "$BASE" | cut -d' ' -f1)

run bad_kind apply.yml fail -e @badkind.yml "$@"
expect_msg bad_kind "value of kind must be one of: kvm, lxc, got: docker found in virtkit_guests"
nothing vk-test-role-new

run check apply.yml any --check "$@"
nothing vk-test-role-vm vk-test-role-ct
[ -z "$(volumes)" ] || { echo "the check run created volumes: $(volumes)"; exit 1; }

run apply apply.yml any "$@"
grep -q 'TASK \[The container answered with its connection variables\]' "$LOG/apply.log"
grep -q 'TASK \[It is the test VM, with SSH connection variables\]' "$LOG/apply.log"
[ "$(virsh domstate vk-test-role-vm)" = running ]
[ "$(volumes)" = "vk-test-role-base.raw vk-test-role-vm.qcow2 " ] || { echo "unexpected volumes: $(volumes)"; exit 1; }

# A restart of both guests (the VM reset, the container stopped and started), then more
# than one retry interval of their DHCP clients (busybox udhcpc: 20 s at most): the rerun
# changes nothing and its plays find the guests, from inside, on the addresses the role gives.
virsh -q reset vk-test-role-vm
lxc-stop -n vk-test-role-ct -t 10
lxc-start -n vk-test-role-ct
sleep 25
run rerun apply.yml changed=0 "$@"
run check_rerun apply.yml changed=0 --check "$@"

# The same hypervisor reached over SSH (a test sshd on loopback, port 22033): the module runs
# there, the container is reached through it (lxc-attach over SSH with the hypervisor's key),
# and the VM's SSH arguments jump through it. Nothing changes.
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key" <<<y >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$WORK/client_key" <<<y >/dev/null
cp "$WORK/client_key.pub" "$WORK/authorized_keys"
cat >"$WORK/sshd_config" <<SSHD
Port 22033
ListenAddress 127.0.0.1
HostKey $WORK/host_key
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
PidFile $WORK/sshd.pid
StrictModes no
UsePAM no
SSHD
mkdir -p /run/sshd
/usr/sbin/sshd -f "$WORK/sshd_config" -E "$WORK/sshd.log"
for _ in $(seq 1 50); do (echo >/dev/tcp/127.0.0.1/22033) 2>/dev/null && break; sleep 0.2; done
cat >"$WORK/remote.ini" <<INV
testhost ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=22033 ansible_user=root ansible_ssh_private_key_file=$WORK/client_key ansible_python_interpreter="{{ ansible_playbook_python }}" ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
INV
run remote apply.yml changed=0 -i "$WORK/remote.ini" -e vk_remote=true
grep -q 'TASK \[The container answered with its connection variables\]' "$LOG/remote.log"
kill "$(cat "$WORK/sshd.pid")"; rm -f "$WORK/sshd.pid"

run bad_entry apply.yml fail -e @bad.yml "$@"
expect_msg bad_entry "guests[1] (vk-test-role-bad): memory: "
if grep -qF 'guests[0] (vk-test-role-new)' "$LOG/bad_entry.log"; then
  cat "$LOG/bad_entry.log"; echo "bad_entry: the valid guest was reported as bad"; exit 1
fi
nothing vk-test-role-new vk-test-role-bad
[ "$(virsh domstate vk-test-role-vm)" = running ]

run partial apply.yml fail -e @partial.yml "$@"
expect_msg partial "guests[1] (vk-test-role-pb): template vk-test-no-such-template not found"
expect_msg partial "ok: [testhost] => (item=vk-test-role-pa (lxc on testhost))"
[ "$(lxc-info -n vk-test-role-pa -sH)" = RUNNING ] || { echo "partial: the good container does not run"; exit 1; }
nothing vk-test-role-pb
run partial_teardown virtkit.guests.teardown any -e @partial.yml "$@"
nothing vk-test-role-pa

run teardown virtkit.guests.teardown any "$@"
nothing vk-test-role-vm vk-test-role-ct
[ "$(volumes)" = "vk-test-role-base.raw " ] || { echo "teardown left or removed the wrong volumes: $(volumes)"; exit 1; }
run teardown_rerun virtkit.guests.teardown changed=0 "$@"
