#!/usr/bin/env python3
"""Combines the results.tsv of several rounds of benches/peers.sh into one: for each row (system,
mode, clients) the median of every figure over the rounds that measured it, with each round's
events/s in the notes; then prints the issue-13 targets as ratios of those medians. It must never
invent a row: a row missing from a round is the median of the rounds that have it, and says so.

    peers_rounds.py OUT ROUND_TSV...   # writes OUT (results.tsv format), prints the ratios
"""
import statistics
import sys


def rows(path):
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 7:
                yield parts


def combine(paths):
    order, seen = [], {}
    for p in paths:
        for r in rows(p):
            key = (r[0], r[1], r[2])
            if key not in seen:
                seen[key] = []
                order.append(key)
            seen[key].append(r)
    out = []
    for key in order:
        runs = seen[key]
        cols = [statistics.median(float(r[i]) for r in runs) for i in range(3, 8 if all(len(r) > 7 for r in runs) else 7)]
        rates = "/".join(f"{float(r[3]):.0f}" for r in runs)
        note = f"median of {len(runs)} of {len(paths)} rounds (events/s {rates})"
        out.append(list(key) + [f"{c:.3f}" for c in cols] + [""] * (5 - len(cols)) + [note])
    return out


def ratios(combined):
    """The targets of issue 13 that compare Annals with the peers, from the medians."""
    rate = {(r[0], r[1], int(r[2])): float(r[3]) for r in combined}

    def best(pred):
        got = [(v, k) for k, v in rate.items() if pred(k)]
        return max(got) if got else (None, None)

    pg_single = {c: v for (s, m, c), v in rate.items() if s.startswith("postgres") and m == "append 1 ev/txn"}
    an_single = {c: v for (s, m, c), v in rate.items() if s.startswith("annals") and m == "append 1 ev/req"}
    lines = []
    for c, want in [(1, 1.0), (16, 1.5), (64, 1.5)]:
        if c in pg_single and c in an_single:
            r = an_single[c] / pg_single[c]
            lines.append(f"singles @{c}: Annals / PostgreSQL = {r:.2f}x (target >= {want}x: {'met' if r >= want else 'not met'})")
    peer, pk = best(lambda k: not k[0].startswith("annals") and " 100 " in f" {k[1]} " and "1 category" not in k[1])
    ann, ak = best(lambda k: k[0].startswith("annals") and "100 ev" in k[1])
    if peer and ann:
        r = ann / peer
        lines.append(f"batches: best Annals ({ak[2]} clients, {ann:,.0f}/s) / best peer ({pk[0]}, {pk[2]} clients, {peer:,.0f}/s) = {r:.2f}x (target >= 1.5x: {'met' if r >= 1.5 else 'not met'})")
    return lines


def main():
    out, paths = sys.argv[1], sys.argv[2:]
    combined = combine(paths)
    with open(out, "w") as f:
        for r in combined:
            f.write("\t".join(r) + "\n")
    for line in ratios(combined):
        print(line)


if __name__ == "__main__":
    main()
