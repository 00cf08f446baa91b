# Sourced by pulumi-cli.sh and language-host.sh: a build stage whose tool output goes to a log file, with
# only the stage's own lines (the caller's `say`) on the terminal.

# A path as the reader can open it from where they are: relative below the current folder.
shown() { case $1 in "$PWD"/*) printf '%s' "${1#"$PWD"/}" ;; *) printf '%s' "$1" ;; esac; }

# logged LOG COMMAND...: runs COMMAND with all its output in LOG (errexit on inside, whatever the caller's
# context); if it fails, prints LOG's last 30 lines and its path and exits with COMMAND's status.
logged() {
  local log=$1 status started=$SECONDS
  shift
  mkdir -p "$(dirname "$log")"
  set +e
  (
    set -e
    "$@"
  ) >"$log" 2>&1
  status=$?
  set -e
  if [ "$status" -ne 0 ]; then
    say "failed (exit $status) after $((SECONDS - started)) s; the last 30 lines of $(shown "$log"):"
    tail -n 30 "$log" | sed 's/^/    /' >&2
    say "the whole output: $(shown "$log")"
    exit "$status"
  fi
}
