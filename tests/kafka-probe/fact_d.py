# Fact d: fencing with a shared transactional.id, checked with the raw reader (./dump, kafka_raw.rs).
import subprocess
from common import *

def raw_view(topic, label):
    out = subprocess.run(["./dump", BOOT, topic], capture_output=True, text=True, timeout=60).stdout
    print(f"  --- raw view ({label}):")
    for l in out.splitlines():
        f = l.split(" ")
        if f[0] == "MARK":
            print("    ", l)
        elif f[0] == "RAW":
            print("     RAW p%s off=%s status=%s txn=%s pid=%s value=%s" % (f[1], f[2], f[3], f[4], f[5], bytes.fromhex(f[8]).decode()))
        elif f[0] in ("SUMMARY", "ERROR", "PART"):
            print("    ", l)

def attempt(label, fn):
    t0 = time.time()
    try:
        r = fn(); print(f"  {label}: OK ({time.time()-t0:.1f}s) {'' if r is None else r}")
        return True
    except KafkaException as e:
        err = e.args[0]
        print(f"  {label}: FAILED ({time.time()-t0:.1f}s) {err.name()} fatal={err.fatal()} abortable={err.txn_requires_abort()} retriable={err.retriable()} :: {err.str()}")
        return False

def produce_n(p, topic, tag, n=3):
    for i in range(n):
        p.produce(topic, value=f"{tag}-{i}".encode(), partition=0)
    p.flush(10)

# ---- d1: A has an open (flushed, uncommitted) transaction when B inits with the same id
print("== d1: B inits while A's transaction is open")
t = uniq("d1"); create_topic(t, 1); X = uniq("tx-X")
A = txn_producer(X); A.init_transactions(10)
A.begin_transaction(); produce_n(A, t, "A-open")
raw_view(t, "A's txn open")
B = txn_producer(X)
attempt("B.init_transactions", lambda: B.init_transactions(30))
raw_view(t, "after B.init_transactions")
attempt("A.produce+flush after B init", lambda: produce_n(A, t, "A-late", 1))
attempt("A.commit_transaction", lambda: A.commit_transaction(10))
raw_view(t, "after A's commit attempt")
attempt("B begin/produce/commit", lambda: (B.begin_transaction(), produce_n(B, t, "B"), B.commit_transaction(10)))
raw_view(t, "after B commits")
print("  librdkafka read_committed sees:", [v.decode() for (_, _, _, v) in consume_all(t, "read_committed", timeout=4)])

# ---- d2: A commits, then B inits with the same id
print("== d2: A commits, then B inits")
t = uniq("d2"); create_topic(t, 1); X = uniq("tx-X")
A = txn_producer(X); A.init_transactions(10)
A.begin_transaction(); produce_n(A, t, "A-committed"); A.commit_transaction(10)
raw_view(t, "after A commit")
B = txn_producer(X)
attempt("B.init_transactions", lambda: B.init_transactions(30))
raw_view(t, "after B.init_transactions")
attempt("A begin+produce+commit after B init", lambda: (A.begin_transaction(), produce_n(A, t, "A-zombie"), A.commit_transaction(10)))
raw_view(t, "after A's zombie txn attempt")
attempt("B begin/produce/commit", lambda: (B.begin_transaction(), produce_n(B, t, "B"), B.commit_transaction(10)))
raw_view(t, "after B commits")
