#!/bin/sh
# Runs each test binary given; exit status 0 = pass, 77 = skip, else fail.
# Prints one closing line "tests: N passed, N failed, N skipped".
pass=0; fail=0; skip=0; failed=""
for t in "$@"; do
  name=$(basename "$t")
  start=$(date +%s)
  "$t" > "$t.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  case $rc in
    0)  pass=$((pass+1)); echo "PASS $name (${secs}s)";;
    77) skip=$((skip+1)); echo "SKIP $name: $(tail -n 1 "$t.log")";;
    *)  fail=$((fail+1)); failed="$failed $name"; echo "FAIL $name (exit $rc), last lines of $t.log:"; tail -n 20 "$t.log" | sed 's/^/    /';;
  esac
done
echo "tests: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
