#!/usr/bin/env bash
# The reader's side, measured: search latency (first page, p50/p99) and pages per second
# under wrk for an email, a thread and a search page, for trove and for
# public-inbox-httpd serving the same mail, in the same run, on the same machine.
#
#   scripts/bench-reader.sh                 # 100,000 messages
#   N=1000000 scripts/bench-reader.sh       # the 1M run (about an hour and a half, most
#                                           # of it public-inbox's import; DROP_TROVE=1
#                                           # frees trove's 17 GB before that import)
#
# Needs: python3, wrk, public-inbox, GNU time (apt-get install wrk public-inbox time), curl, sqlite3
# (python's). The corpus comes from ../shared/bench/gen_corpus.py (seed 42). Results
# go to benches/results/DATE-reader-N.md (or OUT). Set SKIP_PI=1 to measure trove alone.
#   REUSE_SITE=1 WORK=DIR scripts/bench-reader.sh
#                                           # serves the site an earlier run built in DIR
#   SMOKE=1 N=1000 WORK=$(mktemp -d) OUT=/tmp/r.md scripts/bench-reader.sh
#                                           # CI: debug build, 2 s per page, fails when a
#                                           # page was not served
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-100000}
WORK=${WORK:-/tmp/trove-bench-reader-$N}
CORPUS=$WORK/corpus
DURATION=${DURATION:-20}
CONNS=${CONNS:-32}
TROVE_PORT=${TROVE_PORT:-18181}
PI_PORT=${PI_PORT:-18182}
SKIP_PI=${SKIP_PI:-0}
SMOKE=${SMOKE:-0}
[ "$SMOKE" = 1 ] && DURATION=2
OUT=${OUT:-$ROOT/benches/results/$(date -u +%Y-%m-%d)-reader-$N.md}
log() { echo "bench-reader: $*" >&2; }
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
mkdir -p "$WORK" "$(dirname "$OUT")"

if [ ! -f "$CORPUS/manifest.json" ]; then
  log "generating $N messages into $CORPUS"
  python3 ../shared/bench/gen_corpus.py --out "$CORPUS" -n "$N" --seed 42 --jobs 2 >&2
fi
if [ "$SMOKE" = 1 ]; then
  cargo build -q -p trove
  T=${CARGO_TARGET_DIR:-$ROOT/target}/debug/trove
  BENCH_PROFILE=(--profile dev)
else
  cargo build --release -q -p trove
  T=${CARGO_TARGET_DIR:-$ROOT/target}/release/trove
  BENCH_PROFILE=()
fi

# A step's wall seconds and peak MB, from its GNU time line ("-" when it was not run).
wall() { [ -f "$WORK/$1.time" ] && awk '{print $1}' "$WORK/$1.time" || echo "-"; }
peak_mb() { [ -f "$WORK/$1.time" ] && awk '{print int($4 / 1024)}' "$WORK/$1.time" || echo "-"; }

# REUSE_SITE=1 serves the site an earlier run of this script built in $WORK (its build
# times are reported as that run's): for measuring a change to serving alone.
if [ "${REUSE_SITE:-0}" = 1 ] && [ -f "$WORK/ws/site/site.json" ]; then
  log "reusing the site built earlier in $WORK/ws"
  BUILT="built by an earlier run, reused (REUSE_SITE=1)"
else
  rm -rf "$WORK/ws"
  "$T" init "$WORK/ws" > /dev/null
  log "trove ingest"
  timed_into "$WORK" ingest "$T" ingest "$WORK/ws" "$CORPUS/maildir"
  log "trove release"
  timed_into "$WORK" release "$T" release "$WORK/ws" --all --title "Benchmark"
  BUILT="this run"
fi
SITE=$WORK/ws/site

log "search latency"
TROVE_BENCH_SITE=$SITE TROVE_BENCH_QUERIES=$CORPUS/manifest.json \
  TROVE_BENCH_ROUNDS=$([ "$SMOKE" = 1 ] && echo 1 || echo 20) \
  cargo bench -q "${BENCH_PROFILE[@]}" -p trove-site --bench search > "$WORK/search.txt" 2>&1

MID=$(sample_message_id "$CORPUS/manifest.json")
WORD=$(python3 -c 'import json, sys, urllib.parse; m = json.load(open(sys.argv[1])); print(urllib.parse.quote(next(q for q in m["queries"] if q["id"] == "w_medium")["clauses"][0]["v"]))' "$CORPUS/manifest.json")
NUM=$(public_number "$WORK/ws/catalogue.sqlite" "$MID")
# Many searches, each different: what a server does when its answers are not already
# kept (trove keeps 1,024 searches' facets; these are more).
subject_words "$CORPUS/corpus.mbox" "${WORDS:-3000}" > "$WORK/words.txt"
sed 's|^|/search?q=|' "$WORK/words.txt" > "$WORK/trove-searches.txt"
sed 's|^|/bench/?q=|' "$WORK/words.txt" > "$WORK/pi-searches.txt"
[ -n "$NUM" ] || { log "sample thread root $MID not found in the catalogue"; exit 1; }

"$T" serve "$SITE" --bind 127.0.0.1:$TROVE_PORT > "$WORK/serve.log" 2>&1 &
TPID=$!
trap 'kill $TPID 2>/dev/null || true; [ -n "${PPID_PI:-}" ] && kill $PPID_PI 2>/dev/null || true' EXIT
wait_http "http://127.0.0.1:$TROVE_PORT/" || { log "trove serve did not start"; exit 1; }
TB=http://127.0.0.1:$TROVE_PORT
declare -A TROVE
for page in email thread search; do
  case $page in
    email) url="$TB/emailid/$NUM" ;;
    thread) url="$TB/thread/$NUM" ;;
    search) url="$TB/search?q=$WORD" ;;
  esac
  log "wrk trove $page: $url"
  TROVE[$page]=$(wrk_rate "$url")
done
log "wrk trove searches: $(wc -l < "$WORK/words.txt") different words"
TROVE[first]=$(first_pass_rate "$TB" "$WORK/trove-searches.txt")
TROVE[searches]=$(wrk_rate_paths "$TB" "$WORK/trove-searches.txt")
TRSS=$(awk '/VmRSS/{print int($2/1024)}' /proc/$TPID/status)
kill $TPID; wait $TPID 2>/dev/null || true
# At 1M, trove's workspace and site (about 17 GB) and public-inbox's inbox (about 13 GB)
# may not fit on one disk together: DROP_TROVE=1 removes trove's once it is measured.
if [ "${DROP_TROVE:-0}" = 1 ]; then
  log "removing trove's workspace and site ($(du -sh "$WORK/ws" | cut -f1))"
  rm -rf "$WORK/ws"
fi

declare -A PI
if [ "$SKIP_PI" != 1 ]; then
  export PI_CONFIG=$WORK/pi/config
  if [ ! -f "$WORK/pi/done" ]; then
    pi_setup "$WORK/pi" "$PI_PORT"
    log "public-inbox import (slow: about 220 messages/s on 2 cores)"
    timed_into "$WORK" pi-import perl "$WORK/pi/import.pl" "$CORPUS/corpus.mbox"
    touch "$WORK/pi/done"
  fi
  public-inbox-httpd -W 2 -l "http://127.0.0.1:$PI_PORT" -1 "$WORK/pi-httpd.out" -2 "$WORK/pi-httpd.err" &
  PPID_PI=$!
  wait_http "http://127.0.0.1:$PI_PORT/bench/" || { log "public-inbox-httpd did not start"; exit 1; }
  PB=http://127.0.0.1:$PI_PORT/bench
  for page in email thread search; do
    case $page in
      email) url="$PB/$MID/" ;;
      thread) url="$PB/$MID/T/" ;;
      search) url="$PB/?q=$WORD" ;;
    esac
    log "wrk public-inbox $page: $url"
    PI[$page]=$(wrk_rate "$url")
  done
  log "wrk public-inbox searches"
  PI[first]=$(first_pass_rate "http://127.0.0.1:$PI_PORT" "$WORK/pi-searches.txt")
  PI[searches]=$(wrk_rate_paths "http://127.0.0.1:$PI_PORT" "$WORK/pi-searches.txt")
  kill $PPID_PI; wait $PPID_PI 2>/dev/null || true; PPID_PI=""
fi

page_name() {
  case $1 in
    first) echo "different searches, first pass (each once, 4 clients)" ;;
    searches) echo "different searches, round robin, after the first pass" ;;
    *) echo "$1" ;;
  esac
}
ratio() { python3 -c "import sys; a,b=float(sys.argv[1] or 0),float(sys.argv[2] or 0); print(f'{a/b:.1f}x' if b else '-')" "$1" "$2"; }
{
  echo "# Reader benchmark, $N messages ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/{print int($2/1048576)}' /proc/meminfo) GiB; $(uname -r)."
  echo "Corpus: ../shared/bench/gen_corpus.py -n $N --seed 42 ($(du -sh "$CORPUS/maildir" | cut -f1) of Maildir)."
  echo "Command: N=$N scripts/bench-reader.sh (wrk -t2 -c$CONNS -d${DURATION}s per page; servers and wrk share the machine)."
  echo
  echo "## Build ($BUILT)"
  echo
  echo "| step | seconds | peak MB |"
  echo "|---|---|---|"
  echo "| trove ingest | $(wall ingest) | $(peak_mb ingest) |"
  echo "| trove release (published form, index, threads, signed manifest) | $(wall release) | $(peak_mb release) |"
  [ -f "$WORK/pi-import.time" ] && echo "| public-inbox import (git + SQLite + Xapian) | $(wall pi-import) | $(peak_mb pi-import) |"
  echo
  echo "## Search latency (trove, first page of 20, in process)"
  echo
  echo '```'
  grep -E "^(site:|ALL)" "$WORK/search.txt"
  echo '```'
  echo
  echo "## Pages per second"
  echo
  echo "| page | trove | public-inbox-httpd | trove / public-inbox |"
  echo "|---|---|---|---|"
  for page in email thread search first searches; do
    echo "| $(page_name $page) | ${TROVE[$page]} | ${PI[$page]:-} | $(ratio "${TROVE[$page]}" "${PI[$page]:-0}") |"
  done
  echo
  echo "trove serve resident memory after the load: $TRSS MB. Sample thread root $MID = email $NUM; search word from the manifest's w_medium query; searches: $(wc -l < "$WORK/words.txt") different words from the corpus's subjects, each asked once by curl (the first pass), then round robin under wrk."
} > "$OUT"
cat "$OUT"
log "written to $OUT"
# A page that did not answer 200 is reported as 0 requests/s: in CI, a failure.
for rate in "${TROVE[@]}" "${PI[@]}"; do
  if [ -z "$rate" ] || [ "$rate" = 0 ]; then
    log "a page was not served (0 requests/s)"
    [ "$SMOKE" = 1 ] && exit 1
  fi
done
grep -q "^ALL (facets)" "$WORK/search.txt" || { log "the search benchmark did not run: $WORK/search.txt"; [ "$SMOKE" = 1 ] && exit 1; }
true
