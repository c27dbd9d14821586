# Fact c: are transactional offset commits (send_offsets_to_transaction / TxnOffsetCommit)
# applied only when the transaction COMMITS, and not when it ABORTS?
# Scenario 1: group has an active member (subscribed consumer with an assignment).
# Scenario 2: group has no active members (consumer created with group.id only, never subscribed;
#             confluent-kafka's Python API cannot build group metadata from a bare group id).
from common import *

def committed(group, topic, part=0):
    c = Consumer({"bootstrap.servers": BOOT, "group.id": group, "enable.auto.commit": False})
    r = c.committed([TopicPartition(topic, part)], timeout=10)
    c.close()
    return r[0].offset, (r[0].error and str(r[0].error))

def txn_offsets(group_md, topic, offset, commit):
    p = txn_producer(uniq("tx-c"))
    p.init_transactions(10)
    p.begin_transaction()
    p.produce(topic, value=b"x", partition=1)  # some payload, in another partition
    p.send_offsets_to_transaction([TopicPartition(topic, 0, offset)], group_md, 10)
    if commit:
        p.commit_transaction(10)
    else:
        p.abort_transaction(10)

def scenario(name, active):
    t = uniq("c-topic"); create_topic(t, 3)
    # some data so offsets are meaningful
    p = Producer({"bootstrap.servers": BOOT}); [p.produce(t, value=b"d", partition=0) for _ in range(20)]; p.flush(10)
    g = uniq("G")
    c = Consumer({"bootstrap.servers": BOOT, "group.id": g, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest",
                  # tansu's first JoinGroup takes several seconds; with librdkafka defaults
                  # (45s session / 300s rebalance) it did not complete in 15s. See probe_join.py.
                  "session.timeout.ms": 10000, "max.poll.interval.ms": 10000})
    if active:
        c.subscribe([t])
        deadline = time.time() + 60
        while not c.assignment() and time.time() < deadline:
            c.poll(0.3)
        print(f"[{name}] consumer assignment: {[(x.topic[:8], x.partition) for x in c.assignment()]}")
    md = c.consumer_group_metadata()
    print(f"[{name}] group={g} metadata={md}")
    print(f"[{name}] committed() initially:", committed(g, t))
    steps = [("abort", 5, False), ("commit", 7, True), ("abort", 12, False), ("commit", 15, True), ("abort", 3, False)]
    for label, off, do_commit in steps:
        try:
            txn_offsets(md, t, off, do_commit)
            print(f"[{name}] txn with offset={off} -> {label}; committed() now:", committed(g, t))
        except Exception as e:
            print(f"[{name}] txn with offset={off} -> {label} FAILED: {e!r}")
    c.close()

scenario("active-member", True)
scenario("no-members", False)
