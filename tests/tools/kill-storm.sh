#!/usr/bin/env bash
# usage: URL=postgresql://... DURATION=90 tests/tools/kill-storm.sh  (needs psql, pgrep, bc; make test-bins first)
# Kill storm: SIGKILL a random worker of a 4-worker master every 200-500 ms
# for DURATION s while runs flow; print mean live workers and runs finished.
set -u
URL=${URL:-postgresql://postgres@127.0.0.1:31136/postgres}
S=${S:-storm}
DURATION=${DURATION:-90}
B=${BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
psql "$URL" -qc "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null
STEPKIT_TEST_COUNTS=${TMPDIR:-/tmp}/$S.counts setsid $B/bin/stepkit-master --database-url "$URL?application_name=$S" \
  --schema $S --workflows $B/tests/testwf.so --workers 4 > ${TMPDIR:-/tmp}/$S.log 2>&1 &
M=$!
sleep 2
psql "$URL" -qc "SET search_path=$S; SELECT count(start_run('chain3', '{\"sleep_ms\": 20}')) FROM generate_series(1,1000)" >/dev/null
t_end=$(( $(date +%s%N) / 1000000 + DURATION * 1000 ))
samples=0; live_sum=0; kills=0
next_kill=$(( $(date +%s%N) / 1000000 + 200 + RANDOM % 300 ))
done0=$(psql "$URL" -Atc "SELECT count(*) FROM $S.runs WHERE status <> 'pending'")
while :; do
  now=$(( $(date +%s%N) / 1000000 ))
  [ $now -ge $t_end ] && break
  mapfile -t kids < <(pgrep -P $M)
  samples=$((samples+1)); live_sum=$((live_sum + ${#kids[@]}))
  if [ $now -ge $next_kill ] && [ ${#kids[@]} -gt 0 ]; then
     kill -9 ${kids[$((RANDOM % ${#kids[@]}))]} 2>/dev/null && kills=$((kills+1))
     next_kill=$(( now + 200 + RANDOM % 300 ))
  fi
  # keep the queue non-empty (checked every 40 turns: the loop must stay fast)
  [ $((samples % 40)) -ne 0 ] && { sleep 0.02; continue; }
  pend=$(psql "$URL" -Atc "SELECT count(*) FROM $S.runs WHERE status = 'pending'")
  [ "$pend" -lt 200 ] && psql "$URL" -qc "SET search_path=$S; SELECT count(start_run('chain3', '{\"sleep_ms\": 20}')) FROM generate_series(1,500)" >/dev/null
  sleep 0.05
done
done1=$(psql "$URL" -Atc "SELECT count(*) FROM $S.runs WHERE status <> 'pending'")
failed=$(psql "$URL" -Atc "SELECT count(*) FROM $S.runs WHERE status = 'failed'")
kill -TERM $M; wait $M
echo "storm: duration=${DURATION}s kills=$kills samples=$samples mean_live=$(echo "scale=2; $live_sum/$samples" | bc) runs_ended_during_storm=$((done1-done0)) failed=$failed"
grep -c "event=crash_loop" ${TMPDIR:-/tmp}/$S.log
