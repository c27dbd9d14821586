# Fact b: transactional produce, commit vs abort; what read_committed / read_uncommitted consumers see.
from common import *

t = uniq("b-txn"); create_topic(t, 3)
p = txn_producer(uniq("tx-b"))
p.init_transactions(10)
print("init_transactions OK")

p.begin_transaction()
for i in range(5):
    p.produce(t, key=b"k%d" % i, value=b"committed-%d" % i, partition=i % 3)
p.commit_transaction(10)
print("txn1 (5 msgs) committed")

p.begin_transaction()
for i in range(5):
    p.produce(t, key=b"k%d" % i, value=b"aborted-%d" % i, partition=i % 3)
p.flush(10)
p.abort_transaction(10)
print("txn2 (5 msgs, flushed) aborted")

# A third committed txn after the abort, so a read_committed consumer has to skip over the aborted range.
p.begin_transaction()
for i in range(3):
    p.produce(t, key=b"z%d" % i, value=b"committed2-%d" % i, partition=i % 3)
p.commit_transaction(10)
print("txn3 (3 msgs) committed")

for iso in ("read_committed", "read_uncommitted"):
    recs = consume_all(t, iso)
    vals = [v.decode() for (_, _, _, v) in recs]
    print(f"{iso}: {len(recs)} records")
    for r in recs:
        print("   p%d off=%d %s" % (r[0], r[1], r[3].decode()))
