#!/usr/bin/env bash
# Mutation testing of the pure core (docs/mutation-testing.md): mutmut over the diff rules, the write plan,
# the retry helper and the exactly-once sender, against the fast tests that exercise them (no MLflow server,
# no Pulumi CLI). Not part of CI. About 3 to 4 minutes with 2 workers.
#
#   bash scripts/mutation.sh               a fresh run over the four modules, then the summary
#   bash scripts/mutation.sh NAME...       run again only the named mutants (globs allowed, e.g.
#                                          'pulumi_mlflow_runs.core.retries.*') of the last run, with the tests
#                                          as they are now, then the summary. After adding a test file to
#                                          the selection below, or changing the sources, do a fresh run.
#
# mutmut cannot take the package where it lives (provider/pulumi_mlflow_runs: it derives module names from
# paths and only knows ./, src/ and source/), so this stages a copy, src/pulumi_mlflow_runs plus tests/ and
# pyproject.toml with a [tool.mutmut] section, in .mutation/ (gitignored). mutmut writes its mutants/ there
# and never touches provider/. Do not run `mutmut apply` in .mutation/ and copy the result back.
#
# Env: MUTATION_WORKERS (default 2, the most a shared 2-core machine should give).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
workers=${MUTATION_WORKERS:-2}
work=$root/.mutation

# The project venv (scripts/bootstrap.sh makes it on a fresh clone), plus the `mutation` extra: mutmut 3,
# which is not in the `test` extra and which CI does not install.
[ -x .venv/bin/python ] || source scripts/bootstrap.sh
python=$root/.venv/bin/python
if ! "$python" -c 'import importlib.metadata as md, sys; sys.exit(md.version("mutmut").split(".")[0] != "3")' 2>/dev/null; then
  "$python" -m pip install --quiet -e "$root[mutation]"
fi
mutmut=$root/.venv/bin/mutmut

modules=(core/change_rules core/run_diff core/run_plan core/retries core/exactly_once)
# The tests that exercise those modules and need no server or CLI: each runs in milliseconds. mutmut runs,
# for each mutant, only the selected tests that called the mutated function.
tests=(
  tests/rules/test_diff_rules_and_plan.py
  tests/rules/test_change_rules.py
  tests/connection/test_retry_policy.py
  tests/connection/test_retry_helper.py
  tests/connection/test_databricks_endpoints.py
)
deselect=(tests/connection/test_databricks_endpoints.py::test_bulk_endpoints_are_missing_on_open_source_servers)  # needs a server
[ -f tests/rules/test_mutation_kills.py ] && tests+=(tests/rules/test_mutation_kills.py)

stage() {
  # The sources and tests as they are now, and the config; mutants/ and mutmut's results stay.
  rm -rf "$work/src" "$work/tests"
  mkdir -p "$work/src"
  cp -R provider/pulumi_mlflow_runs "$work/src/pulumi_mlflow_runs"
  cp -R tests "$work/tests"
  find "$work/src" "$work/tests" -name __pycache__ -prune -exec rm -rf {} +
  {
    cat pyproject.toml
    echo
    echo '[tool.mutmut]'
    echo 'source_paths = ["src/pulumi_mlflow_runs"]'
    printf 'only_mutate = [%s]\n' "$(printf '"src/pulumi_mlflow_runs/%s.py", ' "${modules[@]}")"
    printf 'pytest_add_cli_args_test_selection = [%s' "$(printf '"%s", ' "${tests[@]}")"
    printf '"--deselect=%s", ' "${deselect[@]}"
    echo ']'
    echo 'pytest_add_cli_args = ["-p", "no:cacheprovider"]'
    echo 'use_git_change_detection = false  # .mutation/ is inside the repository, but is not the project'
  } >"$work/pyproject.toml"
}

start=$SECONDS
if [ $# -eq 0 ]; then
  rm -rf "$work"
  stage
  (cd "$work" && "$mutmut" run --max-children "$workers")
else
  [ -d "$work/mutants" ] || { echo "no previous run in $work: run 'bash scripts/mutation.sh' first" >&2; exit 1; }
  # mutmut copies tests/ into mutants/ again and mutates the four modules again, keeping the verdicts of
  # functions that did not change; the package's other modules stay as the fresh run copied them.
  stage
  (cd "$work" && "$mutmut" run --max-children "$workers" "$@")
fi
echo "mutation run took $((SECONDS - start)) s"

# The summary: per module and in all, from mutmut's own verdicts.
(cd "$work" && "$mutmut" results --all true) >"$work/results.txt"
"$python" - "$work/results.txt" <<'PY'
import collections
import sys

counts = collections.defaultdict(collections.Counter)
left = []
for line in open(sys.argv[1], encoding="utf-8"):
    name, sep, status = line.strip().rpartition(": ")
    if not sep or "__mutmut_" not in name:
        continue
    module = name.split(".")[-2]  # pulumi_mlflow_runs.core.<module>.<function>__mutmut_<n>
    counts[module][status] += 1
    counts["all"][status] += 1
    if status not in ("killed", "no tests"):
        left.append(f"{status:>10}  {name}")
columns = ["killed", "survived", "timeout", "suspicious", "no tests", "segfault", "not checked"]
print()
print(f"{'module':<15}{'mutants':>8}" + "".join(f"{c:>12}" for c in columns))
for module, c in sorted(counts.items(), key=lambda kv: kv[0] == "all"):
    print(f"{module:<15}{sum(c.values()):>8}" + "".join(f"{c[s]:>12}" for s in columns))
if left:
    print()
    print("neither killed nor without tests (see one: cd .mutation && ../.venv/bin/mutmut show NAME):")
    print("\n".join(left))
PY
