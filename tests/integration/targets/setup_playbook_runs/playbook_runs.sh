# shellcheck shell=bash
# Sourced by the role targets' runme.sh (aliases: needs/target/setup_playbook_runs):
#   source ../setup_playbook_runs/playbook_runs.sh
# The caller sets LOG (a directory for the logs) and keeps apply.yml beside its runme.sh.

# run NAME WANT [ansible-playbook args...]: runs apply.yml, logs to $LOG/NAME.log and checks
# the result: WANT is "fail" (must fail), "any" (must pass) or "changed=N" (must pass with
# exactly that recap on testhost).
run() {
  local name=$1 want=$2; shift 2
  local rc=0 start=$SECONDS
  ansible-playbook apply.yml "$@" >"$LOG/$name.log" 2>&1 || rc=$?
  local recap
  recap=$(grep -E '^testhost +:' "$LOG/$name.log" | tail -1 || true)
  echo "$name: rc=$rc ${recap#*: } ($((SECONDS - start)) s)"
  if [ "$want" = fail ]; then
    [ "$rc" -ne 0 ] || { cat "$LOG/$name.log"; echo "$name: expected a failure"; exit 1; }
  else
    [ "$rc" -eq 0 ] || { cat "$LOG/$name.log"; echo "$name: failed"; exit 1; }
    if [ "$want" != any ] && ! grep -Eq " $want +unreachable=0 +failed=0" <<<"$recap"; then
      cat "$LOG/$name.log"; echo "$name: expected $want"; exit 1
    fi
  fi
}

# expect_msg NAME MESSAGE: the log of run NAME contains MESSAGE.
expect_msg() {
  grep -qF -- "$2" "$LOG/$1.log" || { cat "$LOG/$1.log"; echo "$1: message not found: $2"; exit 1; }
}
