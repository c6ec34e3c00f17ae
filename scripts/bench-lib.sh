# Shared by scripts/bench and scripts/bench-reader.sh (sourced, not run): timing a step,
# waiting for a server, a wrk rate, the public-inbox inbox both load, and the sample email
# of a corpus.
# Callers set CONNS and DURATION for wrk_rate, and define log().

# Waits up to two minutes for URL to answer.
wait_http() {
  for _ in $(seq 240); do curl -s -o /dev/null --max-time 2 "$1" && return 0; sleep 0.5; done
  log "no answer from $1"
  return 1
}

# Runs a command under GNU time, after a sync: its wall, user and system seconds and
# peak resident KB (one line) go into DIR/NAME.time, its output into DIR/NAME.out and
# DIR/NAME.err. A failure shows the end of its errors and stops the script.
timed_into() {  # DIR NAME command...
  local dir=$1 name=$2; shift 2
  sync
  if ! /usr/bin/time -f '%e %U %S %M' -o "$dir/$name.time" "$@" > "$dir/$name.out" 2> "$dir/$name.err"; then
    log "$name failed:"; tail -20 "$dir/$name.err" >&2; exit 1
  fi
}

# Requests per second for URL under wrk (0 when the URL does not answer 200).
wrk_rate() {
  curl -s -o /dev/null -w '%{http_code}' "$1" | grep -q 200 || { log "not 200: $1"; echo 0; return; }
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s "$1" 2> /dev/null | awk '/Requests/ {print $2}'
}

# Requests per second over the paths in PATHS_FILE under BASE, round robin (0 when the
# first one does not answer 200).
wrk_rate_paths() {  # BASE PATHS_FILE
  local first; first=$(head -1 "$2")
  curl -s -o /dev/null -w '%{http_code}' "$1$first" | grep -q 200 || { log "not 200: $1$first"; echo 0; return; }
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$(dirname "${BASH_SOURCE[0]}")/wrk-paths.lua" "$1" -- "$2" 2> /dev/null | awk '/Requests/ {print $2}'
}

# One pass over every path in PATHS_FILE under BASE (four clients, each keeping its
# connection open across its share), printing the pass's requests per second: the rate
# of a server whose caches and page cache do not yet hold these pages. It runs before
# wrk_rate_paths on the same list, so that wrk measures the server after that first
# pass, as it runs once it has been up a while; both servers get the same pass.
first_pass_rate() {  # BASE PATHS_FILE
  local start end n; n=$(grep -c . "$2")
  start=$(date +%s.%N)
  sed "s|^|$1|" "$2" | xargs -P 4 -n $(( (n + 3) / 4 )) curl -s > /dev/null
  end=$(date +%s.%N)
  python3 -c "print(round($n / ($end - $start), 1))"
}

# Up to N distinct words (five letters or more) from the Subject lines of MBOX, in the
# order they first appear: search terms that exist in the mail, many enough that a
# server's caches do not hold them all.
subject_words() {  # MBOX N
  python3 - "$1" "$2" <<'PY'
import re, sys
want, seen = int(sys.argv[2]), {}
with open(sys.argv[1], 'rb') as f:
    for line in f:
        if line.startswith(b'Subject: '):
            for w in re.findall(rb'[a-z]{5,}', line[9:].lower()):
                seen.setdefault(w, None)
            if len(seen) >= want:
                break
print('\n'.join(w.decode() for w in list(seen)[:want]))
PY
}

# A fresh v2 inbox named bench in DIR (PI_CONFIG=DIR/config, served at PORT), and
# DIR/import.pl MBOX: public-inbox's own bulk path (import_mbox, as upstream's
# scripts/import_vger_from_mbox does; Debian ships the library, not the script).
pi_setup() {  # DIR PORT
  export PI_CONFIG=$1/config
  rm -rf "$1"; mkdir -p "$1"; : > "$PI_CONFIG"
  public-inbox-init -V2 bench "$1/inbox" "http://127.0.0.1:$2/bench" bench@example.org > /dev/null
  cat > "$1/import.pl" <<'PL'
use strict; use warnings;
use PublicInbox::Config; use PublicInbox::InboxWritable;
my $ibx = PublicInbox::Config->new->lookup_name('bench') or die "no inbox\n";
$ibx = PublicInbox::InboxWritable->new($ibx);
open my $fh, '<', $ARGV[0] or die "$ARGV[0]: $!\n";
$ibx->import_mbox($fh, 'mboxrd');
PL
}

# The Message-ID (without <>) of the corpus's sample "medium thread" root.
sample_message_id() {  # MANIFEST
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["samples"]["medium_thread"]["root_msgid"].strip("<>"))' "$1"
}

# The public number of that email in a workspace's catalogue (empty when not released).
public_number() {  # CATALOGUE MESSAGE-ID
  python3 -c "
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
r = c.execute('select number from messages where message_id in (?, ?)', (sys.argv[2], '<' + sys.argv[2] + '>')).fetchone()
print(r[0] if r and r[0] is not None else '')" "$1" "$2"
}
