# Validation of kafka_raw.rs (via the ./dump binary built from dump_main.rs).
# Produces a mix of committed / aborted / open transactions, non-transactional and idempotent
# records, interleaved producers and multi-record batches into a fresh 3-partition topic; then
# checks that read_committed() returns exactly the committed + non-transactional records, and
# that read_all_raw() shows every aborted record the broker served, tagged Aborted.
import subprocess
from common import *

t = uniq("v-topic"); create_topic(t, 3)
expected = {}   # value -> category ('plain', 'committed', 'aborted', 'open')
seq = [0]
def val(cat, p):
    seq[0] += 1
    v = f"{cat}-{seq[0]}".encode()
    expected[v] = (cat, p)
    return v

plain = Producer({"bootstrap.servers": BOOT, "linger.ms": 50, "enable.idempotence": False})
idem = Producer({"bootstrap.servers": BOOT, "linger.ms": 50, "enable.idempotence": True})

# 1) non-transactional: single records + a 100-record batch, headers, null key, empty value
for i in range(5):
    plain.produce(t, key=b"k%d" % i, value=val("plain", 0), partition=0,
                  headers=[("h1", b"x%d" % i), ("hnull", None)])
    plain.flush(10)
for i in range(100):
    plain.produce(t, value=val("plain", 1), partition=1)        # null key, one big batch
plain.flush(10)
# idempotent (producer id set, but not transactional)
for i in range(20):
    idem.produce(t, key=b"idem", value=val("plain", 2), partition=2)
idem.flush(10)

# 2) committed txn with multi-record batches on all partitions
A = txn_producer(uniq("tx-A")); A.init_transactions(10)
A.begin_transaction()
for i in range(30):
    A.produce(t, key=b"a", value=val("committed", i % 3), partition=i % 3)
A.commit_transaction(10)

# 3) aborted txn (flushed so the records reach the log), multi-record batches
A.begin_transaction()
for i in range(30):
    A.produce(t, key=b"a", value=val("aborted", i % 3), partition=i % 3)
A.flush(10)
A.abort_transaction(10)

# 4) interleaved producers on partition 0: B commits, C aborts, plain records in between
B = txn_producer(uniq("tx-B")); B.init_transactions(10)
C = txn_producer(uniq("tx-C")); C.init_transactions(10)
B.begin_transaction(); C.begin_transaction()
for round_ in range(4):
    for i in range(5):
        B.produce(t, value=val("committed", 0), partition=0)
    B.flush(10)
    for i in range(5):
        C.produce(t, value=val("aborted", 0), partition=0)
    C.flush(10)
    plain.produce(t, value=val("plain", 0), partition=0); plain.flush(10)
C.abort_transaction(10)          # C's ABORT marker comes first ...
for i in range(3):               # ... B keeps writing after C's abort marker
    B.produce(t, value=val("committed", 0), partition=0)
B.flush(10)
B.commit_transaction(10)

# 5) same transactional id: abort then commit again (same producer id, markers alternate)
for k in range(3):
    A.begin_transaction()
    for i in range(4):
        A.produce(t, value=val("aborted" if k % 2 == 0 else "committed", 1), partition=1)
    A.flush(10)
    A.abort_transaction(10) if k % 2 == 0 else A.commit_transaction(10)

# 6) an open transaction left hanging (never committed/aborted)
D = txn_producer(uniq("tx-D")); D.init_transactions(10)
D.begin_transaction()
for i in range(7):
    D.produce(t, value=val("open", 2), partition=2)
D.flush(10)
plain.produce(t, value=val("plain", 2), partition=2); plain.flush(10)  # plain record after the open txn

# ---- run the Rust reader
out = subprocess.run(["./dump", BOOT, t], capture_output=True, text=True, timeout=120).stdout
open(f"validate_dump.out", "w").write(out)
raw, rc, marks, parts, summary = [], [], [], [], None
for line in out.splitlines():
    f = line.split(" ")
    if f[0] == "RAW":
        raw.append((int(f[1]), int(f[2]), f[3], int(f[4]), int(f[5]), bytes.fromhex(f[8]) if f[8] not in "-~" else f[8], int(f[9]), f[10:]))
    elif f[0] == "RC":
        rc.append((int(f[1]), int(f[2]), bytes.fromhex(f[4])))
    elif f[0] == "MARK":
        marks.append(f[1:])
    elif f[0] == "PART":
        parts.append(f[1:])
    elif f[0] in ("SUMMARY", "ERROR", "PARTS"):
        print(line)

def check(label, cond):
    print(("PASS " if cond else "FAIL ") + label)
    return cond

cnt = {}
for v, (c, p) in expected.items():
    cnt[c] = cnt.get(c, 0) + 1
print("produced:", cnt)
print("partitions (p hw lso next broker_aborted_txns):", parts)
print("markers:", len(marks), "ABORT:", sum(m[4] == "ABORT" for m in marks), "COMMIT:", sum(m[4] == "COMMIT" for m in marks))

exp_visible = sorted((p, v) for v, (c, p) in expected.items() if c in ("plain", "committed"))
got_visible = sorted((p, v) for (p, o, v) in rc)
check(f"read_committed returns exactly the {len(exp_visible)} committed+plain records (got {len(got_visible)})",
      exp_visible == got_visible)
check("read_committed offsets strictly increase per partition",
      all(a[1] < b[1] for a, b in zip(rc, rc[1:]) if a[0] == b[0]))
status_of = {r[5]: r[2] for r in raw}
want = {"plain": "NonTransactional", "committed": "Committed", "aborted": "Aborted", "open": "Open"}
bad = [(v, c, status_of.get(v)) for v, (c, p) in expected.items() if status_of.get(v) != want[c]]
check(f"read_all_raw tags every produced record with the right status (mismatches: {bad[:5]})", not bad)
n_ab = sum(1 for r in raw if r[2] == "Aborted")
check(f"read_all_raw shows {n_ab} aborted records served by the broker (produced {cnt['aborted']})", n_ab == cnt["aborted"])
check("read_all_raw has no records we did not produce", len(raw) == len(expected))
hdr = [r for r in raw if r[0] == 0 and r[7][:1] == ["h1=7830"]]
check(f"headers decoded (h1=x0, hnull=null) on first plain record: {raw[0][6:] if raw else None}",
      bool(raw) and raw[0][7] == ["h1=7830", "hnull=-"])

# Cross-check offsets against librdkafka's read_uncommitted view (what the broker serves).
lib = consume_all(t, "read_uncommitted", timeout=6)
check(f"(partition, offset, value) of read_all_raw == librdkafka read_uncommitted ({len(lib)} records)",
      sorted((p, o, v) for (p, o, k, v) in lib) == sorted((r[0], r[1], r[5]) for r in raw))
lib_rc = consume_all(t, "read_committed", timeout=6)
print(f"for comparison, librdkafka read_committed consumer got {len(lib_rc)} records, "
      f"{sum(1 for (_, _, _, v) in lib_rc if expected.get(v, ('?',))[0] == 'aborted')} of them aborted, "
      f"{sum(1 for (_, _, _, v) in lib_rc if expected.get(v, ('?',))[0] == 'open')} of them from the open txn")
D.abort_transaction(10)
