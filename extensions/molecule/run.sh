#!/usr/bin/env bash
# Run every molecule scenario of virtkit.guests with `molecule test`: the collection's own
# scenarios under extensions/molecule/ (one per role) and the infrastructure-repository
# example under examples/infra-repo/. `make test` calls this script.
#
#   extensions/molecule/run.sh [SCENARIO...]
#     default: kvm_host lxc_host guests infra-repo (2-3 minutes on 2 cores)
#     infra-repo-kvm: the example with a Debian VM instead of a container (about 2-3 minutes
#     more, needs the Debian test image: make debian-image); not in the default set
#
# Needs: root, libvirtd and lxc-net running (scripts/setup-host.sh services), the tiny test
# image (tests/images/build-tiny-image.sh), molecule in the venv (requirements-dev.txt).
# The collection is found through ANSIBLE_COLLECTIONS_PATH (default .build/collections, which
# scripts/setup-host.sh links to this tree); Galaxy is never contacted.
# Each `molecule test` first looks for an optional `default` scenario (for shared state) and
# logs "CRITICAL '.../default/molecule.yml' glob failed" when there is none: molecule's own
# probe, not a failure; the scenario's recap and this script's summary tell the result.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$ROOT/.build/collections}
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 NO_COLOR=1 PY_COLORS=0
export VIRTKIT_IMAGE_DIR=${VIRTKIT_IMAGE_DIR:-/var/lib/libvirt/images/virtkit-test}
# The inventories name each host's python (the controller's own, with libvirt-python and lxml,
# for the hypervisor; /usr/bin/python3 in guests): a global one from the environment (the
# Makefile exports the venv's) must not reach a guest that lacks that path.
unset ANSIBLE_PYTHON_INTERPRETER

die() { echo "molecule: $*" >&2; exit 1; }
command -v molecule >/dev/null || die "molecule is not installed in $VENV (pip install -r requirements-dev.txt)"
[ -e "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/virtkit/guests/galaxy.yml" ] \
  || die "virtkit.guests is not on ANSIBLE_COLLECTIONS_PATH=$ANSIBLE_COLLECTIONS_PATH (run: scripts/setup-host.sh collection)"

ALL=(kvm_host lxc_host guests infra-repo)
[ $# -gt 0 ] || set -- "${ALL[@]}"

results=()
status=0
for name in "$@"; do
  start=$SECONDS
  rc=0
  case $name in
    infra-repo)
      (cd "$ROOT/examples/infra-repo" && molecule test -s default) || rc=$?
      ;;
    infra-repo-kvm)
      (cd "$ROOT/examples/infra-repo" && molecule test -s kvm) || rc=$?
      ;;
    *)
      [ -f "$ROOT/extensions/molecule/$name/molecule.yml" ] || die "no scenario $name (known: ${ALL[*]} infra-repo-kvm)"
      (cd "$ROOT" && molecule test -s "$name") || rc=$?
      ;;
  esac
  results+=("$(printf '%-12s %-6s %4d s' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAILED)" $((SECONDS - start)))")
  [ $rc -eq 0 ] || status=1
done
echo "molecule scenarios:"
printf '  %s\n' "${results[@]}"
exit $status
