# Shared helpers for the fact-finding scripts (run against a tansu broker).
import sys, time, uuid
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

BOOT = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:19092"

def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

_ADMIN = None
def admin():
    # Keep one AdminClient alive: futures fail with _DESTROY if the handle is GC'd.
    global _ADMIN
    if _ADMIN is None:
        _ADMIN = AdminClient({"bootstrap.servers": BOOT})
    return _ADMIN

def create_topic(name, partitions=3):
    fs = admin().create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    for t, f in fs.items():
        f.result(10)

def consume_all(topic, isolation, group=None, timeout=6.0, partitions=None):
    """Assign all partitions from the beginning and return list of (partition, offset, key, value)."""
    c = Consumer({"bootstrap.servers": BOOT, "group.id": group or uniq("g"),
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    if partitions is None:
        md = c.list_topics(topic, timeout=10)
        partitions = sorted(md.topics[topic].partitions.keys())
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out, deadline = [], time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append((m.partition(), m.offset(), m.key(), m.value()))
    c.close()
    return sorted(out)

def txn_producer(txid, **extra):
    cfg = {"bootstrap.servers": BOOT, "transactional.id": txid, "linger.ms": 5}
    cfg.update(extra)
    return Producer(cfg)
