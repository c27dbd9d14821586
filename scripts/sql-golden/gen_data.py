#!/usr/bin/env python3
"""Writes the input tables of the golden SQL corpus (tests/sql-golden/README.md).

Deterministic (a seeded random.Random, Python 3 standard library only): running it again
writes byte-identical files. One folder per table, one file per folder:

  events/events.csv     CSV, no header; no NULLs (Flink's csv format has no text that reads
                        as NULL without options: an empty BIGINT/INT/DOUBLE/TIMESTAMP field is
                        a parse error, an empty BOOLEAN field reads as false, an empty VARCHAR
                        field as ''); '' strings, commas, quotes, backslashes, unicode; rows
                        out of order inside the 5 s watermark delay and some far behind it.
  jevents/jevents.jsonl JSON lines, the same columns: JSON nulls and missing fields in every
                        column but ts (the watermark column: Flink fails on a NULL rowtime).
  jplain/jplain.jsonl   JSON lines, the same columns, no watermark: NULL and missing ts too.
  lhs/lhs.jsonl         join tables: NULL keys on both sides, duplicate keys, keys on one
  rhs/rhs.jsonl         side only; out of order only inside their 2 s watermark delay (no
                        late rows, so time joins do not depend on how Flink interleaves them).

  scripts/sql-golden/gen_data.py [OUT_DIR]     (default: tests/sql-golden/data)
"""
import csv
import datetime
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "sql-golden", "data")

BASE = datetime.datetime(2024, 3, 10, 8, 0, 0)

STRINGS = [
    "alpha", "Beta", "gamma delta", "ALPHA", "", "héllo wörld", "日本語", "😀 smile",
    "a,b", 'say "hi"', "  padded  ", "x_y%z", "straße", "back\\slash", "Ünïcödé", "mixed CASE words",
    "alpha-beta-gamma", "42", "3.5", "true", "2024-03-10 08:30:00", "o'clock",
]
KEYS = [1, 2, 3, 0, -1, -7, 5, 42, 1000000000000]


def ts_text(ms):
    t = BASE + datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (t.microsecond // 1000)


def event_times(rng, n, delay_ms, late_share, step=(200, 4000)):
    """n event times in ms after BASE, in arrival order: mostly increasing; some out of order
    but above the watermark (max seen - delay); with late_share, some far behind it. Also one
    row exactly at the watermark and rows on minute boundaries and repeated times."""
    out = []
    cur = 0
    top = 0  # the largest time seen so far
    for i in range(n):
        r = rng.random()
        if i > 10 and r < late_share:
            t = top - rng.randint(20_000, 150_000)  # late: far behind the watermark
        elif i > 3 and r < late_share + 0.12:
            t = top - rng.randint(1, delay_ms - 1)  # out of order, still above the watermark
        elif i > 3 and r < late_share + 0.15:
            t = top  # the same time as the previous largest
        else:
            cur += rng.randint(*step)
            if rng.random() < 0.06:
                cur = (cur // 60_000 + 1) * 60_000  # on a minute boundary
            t = cur
        if late_share and i == n // 2:
            t = top - delay_ms  # exactly at the watermark (late for OVER, not for windows)
        t = max(t, 0)
        out.append(t)
        top = max(top, t)
    return out


def events(rng):
    rows = []
    for t in event_times(rng, 300, 5000, 0.05):
        k = rng.choice(KEYS)
        i = rng.randint(-20, 100)
        x = round(rng.uniform(-50, 50), rng.choice([0, 1, 2, 2, 3])) + 0.0
        s = rng.choice(STRINGS)
        b = rng.random() < 0.5
        rows.append([k, i, x, s, b, t])
    return rows


def write_csv(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        for k, i, x, s, b, t in rows:
            w.writerow([k, i, repr(float(x)), s, "true" if b else "false", ts_text(t)])


def write_jsonl(path, names, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            obj = {}
            for name, v in zip(names, row):
                if v is MISSING:
                    continue
                obj[name] = v
            f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


MISSING = object()


def nullable(rng, v, null=0.15, missing=0.05):
    r = rng.random()
    if r < null:
        return None
    if r < null + missing:
        return MISSING
    return v


def jevents(rng, n, late_share, ts_nulls):
    rows = []
    for t in event_times(rng, n, 5000, late_share):
        k = nullable(rng, rng.choice(KEYS))
        i = nullable(rng, rng.randint(-20, 100))
        x = nullable(rng, round(rng.uniform(-50, 50), rng.choice([0, 1, 2])) + 0.0)
        s = nullable(rng, rng.choice(STRINGS))
        b = nullable(rng, rng.random() < 0.5)
        ts = ts_text(t)
        if ts_nulls:
            ts = nullable(rng, ts, 0.2, 0.05)
        rows.append([k, i, x, s, b, ts])
    return rows


def join_tables(rng):
    lhs = []
    times = event_times(rng, 40, 2000, 0.0, step=(2000, 12000))
    lkeys = [None, 1, 2, 3, 4, 5, 7]
    names = ["ann", "bob", None, "cy", "dée", "eve", "李"]
    for n, t in enumerate(times):
        k = rng.choice(lkeys)
        lhs.append([100 + n, k, rng.choice(names),
                    None if rng.random() < 0.15 else rng.randint(0, 9), ts_text(t)])
    rhs = []
    rkeys = [None, 1, 2, 2, 3, 6, 8]
    tags = ["x", "y", "z", None]
    rtimes = sorted(t + rng.randint(-5000, 30000) for t in times for _ in range(rng.randint(0, 3)))
    # out of order inside the 2 s delay only: swap neighbours less than 1.5 s apart
    for j in range(1, len(rtimes)):
        if rtimes[j] - rtimes[j - 1] < 1500 and rng.random() < 0.5:
            rtimes[j - 1], rtimes[j] = rtimes[j], rtimes[j - 1]
    for n, t in enumerate(rtimes):
        amount = None if rng.random() < 0.1 else round(rng.uniform(0, 100), 2)
        rhs.append([200 + n, rng.choice(rkeys), rng.choice(tags), amount, ts_text(max(t, 0))])
    return lhs, rhs


def check(ev, jev, lhs, rhs):
    """What the corpus relies on (tests/sql-golden/README.md): OVER frames ordered by ts see
    no two rows of one partition at the same time (Flink breaks such ties by arrival, which an
    engine need not copy), and the join tables have no row at or behind their watermark."""
    def key_ts(rows, what):
        seen = set()
        for r in rows:
            kt = (None if r[0] is MISSING else r[0], r[-1])
            assert kt not in seen, f"{what}: two rows of key {kt[0]} at {kt[1]}"
            seen.add(kt)
    key_ts([[r[0], r[5]] for r in ev], "events")
    key_ts(jev, "jevents")
    for rows, what in ((lhs, "lhs"), (rhs, "rhs")):
        key_ts([[0, r[-1]] for r in rows], what)  # no two rows at one time at all
        top = None
        for r in rows:
            t = datetime.datetime.strptime(r[-1], "%Y-%m-%d %H:%M:%S.%f")
            assert top is None or t > top - datetime.timedelta(seconds=2), f"{what}: late row {r}"
            top = t if top is None else max(top, t)


def main():
    rng = random.Random(20240310)
    ev = events(rng)
    write_csv(os.path.join(OUT, "events", "events.csv"), ev)
    cols = ["k", "i", "x", "s", "b", "ts"]
    jev = jevents(rng, 200, 0.04, False)
    write_jsonl(os.path.join(OUT, "jevents", "jevents.jsonl"), cols, jev)
    write_jsonl(os.path.join(OUT, "jplain", "jplain.jsonl"), cols, jevents(rng, 40, 0.0, True))
    lhs, rhs = join_tables(rng)
    check(ev, jev, lhs, rhs)
    write_jsonl(os.path.join(OUT, "lhs", "lhs.jsonl"), ["id", "k", "name", "n", "ts"], lhs)
    write_jsonl(os.path.join(OUT, "rhs", "rhs.jsonl"), ["id", "k", "tag", "amount", "ts"], rhs)


if __name__ == "__main__":
    main()
