#!/usr/bin/env bash
# No template from a guest, on every ansible-core that meta/runtime.yml admits: a shut-off tiny
# domain and a running busybox container hold "{{ 'INJECTED-' ~ (6 * 7) }}" in their name,
# metadata (owner, groups, another key), lxc.group and lxc.uts.name. Then, with ansible-core
# 2.17 and 2.18 (the virtualenvs of scripts/setup-host.sh cores) and the default one (2.19+):
#  - a play on the guest_inventory plugin prints and asserts every such field (the template
#    itself, never its value), also through compose and hostvars;
#  - the guests role (guest_fleet + add_host) converges the container, and a play on the added
#    host asserts what guest_fleet read back from the container and the host's variables.
# "INJECTED-42" must appear in no output. Everything is named vk-unsafe-*; the trap removes it.
set -euo pipefail
cd "$(dirname "$0")"
# ansible-test names its inventory (testhost) in INVENTORY_PATH; by hand, pass -i yourself.
if [ -n "${INVENTORY_PATH:-}" ]; then set -- -i "$INVENTORY_PATH" "$@"; fi
ARGS=("$@")
# The older cores' virtualenvs (scripts/setup-host.sh cores): in $VIRTKIT_BUILD/cores when set,
# else in the collection's .build/cores (a checkout; make testroot links the build's there).
# ansible-test passes ANSIBLE_COLLECTIONS_PATH, not VIRTKIT_BUILD.
cores_dir() {
  local p
  if [ -n "${VIRTKIT_BUILD:-}" ]; then echo "$VIRTKIT_BUILD/cores"; return; fi
  IFS=: read -ra roots <<<"${ANSIBLE_COLLECTIONS_PATH:-}"
  for p in "${roots[@]}"; do
    if [ -d "$p/ansible_collections/virtkit/guests/.build/cores" ]; then
      echo "$p/ansible_collections/virtkit/guests/.build/cores"; return
    fi
  done
  echo "(no .build/cores next to virtkit.guests on ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-})"
}
CORES=$(cores_dir)
WORK=/tmp/vk-unsafe-strings
LOG=
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0

cleanup() {  # every domain and container named vk-unsafe-* (names may hold spaces and braces)
  local name
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    virsh -q destroy "$name" >/dev/null 2>&1 || true
    virsh -q undefine "$name" >/dev/null 2>&1 || echo "cleanup: could not undefine $name"
  done < <(virsh -q list --all --name 2>/dev/null | grep '^vk-unsafe-' || true)
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    lxc-destroy -f -n "$name" >/dev/null 2>&1 || echo "cleanup: could not destroy $name"
  done < <(lxc-ls -1 2>/dev/null | grep '^vk-unsafe-' || true)
  rm -rf "$WORK" ${LOG:+"$LOG"}
}
trap cleanup EXIT
cleanup
LOG=$(mktemp -d /tmp/vk-unsafe-logs.XXXXXX)
mkdir -p "$WORK"

run() {  # name, ansible-playbook executable, playbook, args...
  local name=$1 exe=$2 playbook=$3 rc=0 start=$SECONDS; shift 3
  "${RUNENV[@]}" "$exe" "$playbook" "$@" >"$LOG/$name.log" 2>&1 || rc=$?
  echo "$name: rc=$rc ($((SECONDS - start)) s)"
  [ "$rc" -eq 0 ] || { cat "$LOG/$name.log"; echo "$name: failed"; exit 1; }
  if grep -q 'INJECTED-42' "$LOG/$name.log"; then
    cat "$LOG/$name.log"; echo "$name: a template read from a guest was evaluated (INJECTED-42)"; exit 1
  fi
}
expect() {  # name, text that must be in its output
  grep -qF -- "$2" "$LOG/$1.log" || { cat "$LOG/$1.log"; echo "$1: not found: $2"; exit 1; }
}

RUNENV=(env)
run setup ansible-playbook setup.yml "${ARGS[@]}"

TPL="{{ 'INJECTED-' ~ (6 * 7) }}" TIGHT="{{'INJECTED-'~6*7}}"
for core in 2.17 2.18 default; do
  if [ "$core" = default ]; then
    bin=$(dirname "$(command -v ansible-playbook)")
    RUNENV=(env) py=()  # as ansible-test set it up
  else
    # ansible-test puts its own ansible on PYTHONPATH: each core's tools must import their own,
    # and modules run with that core's Python (its venv has libvirt-python and lxml).
    RUNENV=(env -u PYTHONPATH) py=(-e "ansible_python_interpreter=$CORES/$core/bin/python")
    bin=$CORES/$core/bin
    [ -x "$bin/ansible-playbook" ] || { echo "$bin/ansible-playbook is missing: run scripts/setup-host.sh cores"; exit 1; }
  fi
  version=$("${RUNENV[@]}" "$bin/ansible" --version 2>/dev/null | sed -n '1s/.*core \([0-9.]*\).*/\1/p')
  case "$core" in
    default) [[ -n "$version" && "$version" != 2.17.* && "$version" != 2.18.* ]] \
               || { echo "the default ansible-core is '$version': 2.19 or newer expected"; exit 1; } ;;
    *) [[ "$version" == "$core".* ]] || { echo "$bin is ansible-core $version, not $core"; exit 1; } ;;
  esac
  echo "ansible-core $version ($bin)"
  run "inventory-$core" "$bin/ansible-playbook" inventory.yml -i unsafe.virtkit.yml "${py[@]}"
  expect "inventory-$core" "owner=$TPL note=$TPL composed=$TPL"
  expect "inventory-$core" "name=vk-unsafe-vm-$TIGHT short=vk-unsafe-vm-$TIGHT virtkit_name=vk-unsafe-vm-$TIGHT"
  expect "inventory-$core" "copied=$TPL"
  expect "inventory-$core" "lxc.uts.name=[\\\"$TPL\\\"]"  # as debug prints it: [\"...\"]
  expect "inventory-$core" "ok: [vk-unsafe-ct]"
  if grep -q 'DEPRECATION WARNING' "$LOG/inventory-$core.log"; then  # none from the unsafe marking
    cat "$LOG/inventory-$core.log"; echo "inventory-$core: a deprecation warning"; exit 1
  fi
  run "role-$core" "$bin/ansible-playbook" role.yml "${ARGS[@]}" "${py[@]}"
  expect "role-$core" "from_hv={'lxc.uts.name': [\\\"$TPL\\\"]}"
  expect "role-$core" "fleet_config=$TPL"
done
echo "guest_unsafe_strings: every string from the guests stayed literal on 2.17, 2.18 and $version"
