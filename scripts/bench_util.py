#!/usr/bin/env python3
"""Helpers of scripts/bench: the search round and the report.

  bench_util.py search --manifest M --rounds R --trove BIN --site DIR --muhome DIR --peers "..."
  bench_util.py report --results DIR --n N --peers "..." --smoke 0|1

The peers' query syntax comes from ../shared/bench/peers_util.py (the same translation the
peers script uses), so every tool answers the same abstract queries of the corpus manifest.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import peers_util  # noqa: E402

# Clause kinds every tool's translation expresses; other queries are left out of the
# comparison rather than compared with a different meaning.
COMMON = {"word", "phrase", "from", "subject", "date"}


def to_trove(clauses):
    parts = []
    for c in clauses:
        t, v = c["t"], c["v"]
        if t == "word":
            parts.append(v)
        elif t == "phrase":
            parts.append('"' + " ".join(v) + '"')
        elif t == "date":
            parts.append(f"date:{v[0]}..{v[1]}")
        else:
            parts.append(f"{t}:{v}")
    return " ".join(parts)


def run_ms(argv, env, rounds):
    """Median wall time of `rounds` runs after one warm-up; the process start is included."""
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        times.append((time.perf_counter() - start) * 1000)
        # mu exits non-zero when nothing matches; that is an answer, not a failure.
        if p.returncode != 0 and b"no matches" not in p.stderr:
            raise SystemExit(f"{' '.join(argv)} failed: {p.stderr.decode(errors='replace')[-500:]}")
    return statistics.median(times)


def cmd_search(a):
    manifest = json.load(open(a.manifest))
    queries = [q for q in manifest["queries"] if all(c["t"] in COMMON for c in q["clauses"])]
    peers = a.peers.split()
    env = dict(os.environ)
    out = {}
    tools = ["trove"] + [p for p in peers if p in ("notmuch", "mu")]
    for tool in tools:
        per_query = {}
        for q in queries:
            if tool == "trove":
                argv = [a.trove, "search", a.site, to_trove(q["clauses"]), "--limit", "20"]
            elif tool == "notmuch":
                argv = ["notmuch", "search", "--output=files", "--sort=newest-first", "--limit=20"]
                argv += peers_util.to_notmuch(q["clauses"])
            else:
                argv = ["mu", "find", f"--muhome={a.muhome}", "--fields=l", "--sortfield=date",
                        "--reverse", "--maxnum=20"] + peers_util.to_mu(q["clauses"])
            per_query[q["id"]] = run_ms(argv, env, a.rounds)
        values = sorted(per_query.values())
        out[tool] = {
            "queries": len(values),
            "median_ms": statistics.median(values),
            "max_ms": values[-1],
            "per_query": per_query,
        }
    json.dump(out, sys.stdout, indent=1)


def read_time(path):
    """GNU time's `%e %U %S %M`: wall, user, system, peak RSS (KB)."""
    try:
        wall, user, sys_, rss = open(path).read().split()[-4:]
    except FileNotFoundError:
        return None
    return {"wall": float(wall), "cpu": float(user) + float(sys_), "rss_mb": int(rss) / 1024}


def read_size(path):
    try:
        # float first: an older run's awk printed large sums as 3.59485e+09.
        apparent, disk = open(path).read().split()
        return int(float(apparent)), int(float(disk))
    except FileNotFoundError:
        return None


def read_rate(path):
    try:
        return float(open(path).read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return None


def cmd_report(a):
    R = a.results
    ingest = json.load(open(os.path.join(R, "trove-ingest.out")))
    n_files = ingest["messages_seen"]
    floor = json.loads(open(os.path.join(R, "floor.json")).read().strip().splitlines()[-1])
    t_ing = read_time(os.path.join(R, "trove-ingest.time"))
    t_rel = read_time(os.path.join(R, "trove-release.time"))
    rows = [
        ("floor: read + mail-parser + tantivy (positions), 2 threads", {
            "wall": floor["read_s"] + floor["parse_index_s"], "cpu": None, "rss_mb": None}),
        ("trove ingest (every feature, no index)", t_ing),
        ("trove release (published form, index, threads, signed manifest)", t_rel),
        ("trove ingest + release (mail to signed, searchable site)", {
            "wall": t_ing["wall"] + t_rel["wall"], "cpu": t_ing["cpu"] + t_rel["cpu"],
            "rss_mb": max(t_ing["rss_mb"], t_rel["rss_mb"])}),
    ]
    peer_rows = {"notmuch": ("notmuch new", "notmuch-ingest"),
                 "mu": ("mu index", "mu-ingest"),
                 "public-inbox": ("public-inbox import (git + SQLite + Xapian)", "pi-ingest")}
    peers = [p for p in a.peers.split() if p in peer_rows]
    for p in peers:
        t = read_time(os.path.join(R, peer_rows[p][1] + ".time"))
        if t:
            rows.append((peer_rows[p][0], t))

    def rate(t):
        return n_files / t["wall"] if t and t["wall"] else None

    def f(v, nd=1):
        return "–" if v is None else f"{v:,.{nd}f}"

    out = []
    w = out.append
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 1048576
    w(f"# trove benchmark suite, {a.n:,} messages ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    w("")
    if a.smoke == "1":
        w("**Smoke run (debug build, one round): the figures mean nothing; it only shows the suite runs.**")
        w("")
    w(f"Machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}.")
    mail = read_size(os.path.join(R, "mail.size"))
    w(f"Corpus: `../shared/bench/gen_corpus.py -n {a.n} --seed 42`: {n_files:,} message files, "
      f"{mail[0] / 1e6:,.0f} MB of mail ({mail[1] / 1e6:,.0f} MB on disk as a Maildir).")
    w(f"Command: `N={a.n} scripts/bench` (peers: {a.peers or 'none'}).")
    if a.smoke != "1":
        w("trove's build: " + ("profile-guided (`scripts/build-pgo`)." if a.pgo == "1"
                               else "`cargo build --release` (`PGO=0`)."))
    w("")
    w("## Building the archive")
    w("")
    w("| what | wall s | CPU s | peak RSS MB | messages/s | trove ingest / this | trove ingest+release / this |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    r_ing = rate(t_ing)
    r_both = rate(rows[3][1])
    for name, t in rows:
        r = rate(t)
        ratio = lambda x: f"{x / r:.2f}×" if r and x else "–"  # noqa: E731
        w(f"| {name} | {f(t['wall'])} | {f(t['cpu'])} | {f(t['rss_mb'], 0)} | {f(r, 0)} | "
          f"{ratio(r_ing)} | {ratio(r_both)} |")
    w("")
    st = ingest["stages"]
    per = lambda ns: ns / 1000 / n_files  # noqa: E731
    w("Where trove's ingest goes, per message (core time summed over threads, except the "
      "catalogue, which is one thread's wall time; from `trove ingest --json`):")
    w("")
    w("| store (SHA-256, zstd) | parse | DKIM + ARC | personal-data detectors | catalogue + pack write |")
    w("|---:|---:|---:|---:|---:|")
    w(f"| {per(st['store_ns']):.1f} µs | {per(st['parse_ns']):.1f} µs | {per(st['authenticate_ns']):.1f} µs "
      f"| {per(st['detect_ns']):.1f} µs | {per(st['catalogue_ns']):.1f} µs |")
    w("")
    w("## On disk")
    w("")
    w("| what | bytes | on disk | on disk / mail on disk |")
    w("|---|---:|---:|---:|")
    sizes = [("the mail (Maildir)", mail)]
    ws = read_size(os.path.join(R, "trove-workspace.size"))
    site = read_size(os.path.join(R, "trove-site.size"))
    index = read_size(os.path.join(R, "trove-index.size"))
    sizes += [("trove workspace (packed originals + catalogue)", ws), ("trove site (all of it)", site),
              ("  of which the search index", index),
              ("trove total (workspace + site)", (ws[0] + site[0], ws[1] + site[1]))]
    for p, name in (("notmuch", "notmuch database"), ("mu", "mu database"), ("pi", "public-inbox inbox")):
        s = read_size(os.path.join(R, p + ".size"))
        if s:
            sizes.append((name, s))
    for name, s in sizes:
        w(f"| {name} | {s[0] / 1e6:,.0f} MB | {s[1] / 1e6:,.0f} MB | {s[1] / mail[1]:.2f} |")
    w("")
    search = json.load(open(os.path.join(R, "search.json")))
    w("## Search (first page, each query a new process, median of the per-query medians)")
    w("")
    w("| tool | queries | median ms | slowest ms | this / trove |")
    w("|---|---:|---:|---:|---:|")
    for tool, s in search.items():
        w(f"| {tool} | {s['queries']} | {s['median_ms']:.1f} | {s['max_ms']:.1f} | "
          f"{s['median_ms'] / search['trove']['median_ms']:.1f}× |")
    w("")
    w("## Serving one email page (wrk -t2 -c32; server and wrk share the machine)")
    w("")
    w("| server | requests/s | trove / this |")
    w("|---|---:|---:|")
    tr = read_rate(os.path.join(R, "trove-serve.rate"))
    for name, fn in (("trove serve", "trove-serve"), ("public-inbox-httpd -W 2", "pi-serve"),
                     ("nginx, trove's page as a static file (the ceiling)", "nginx-serve")):
        v = read_rate(os.path.join(R, fn + ".rate"))
        if v is not None:
            w(f"| {name} | {v:,.0f} | {tr / v:.2f}× |" if v else f"| {name} | 0 | – |")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search")
    s.add_argument("--manifest", required=True)
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--trove", required=True)
    s.add_argument("--site", required=True)
    s.add_argument("--muhome", required=True)
    s.add_argument("--peers", default="")
    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--n", type=int, required=True)
    r.add_argument("--peers", default="")
    r.add_argument("--smoke", default="0")
    r.add_argument("--pgo", default="0")
    a = ap.parse_args()
    {"search": cmd_search, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
