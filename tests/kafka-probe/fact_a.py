# Fact a: topic creation — auto-create on produce/metadata, and CreateTopics with 3 partitions.
from common import *

# 1) CreateTopics via AdminClient
t = uniq("a-created")
try:
    create_topic(t, 3)
    md = admin().list_topics(t, timeout=10)
    print("CreateTopics OK:", t, "partitions =", sorted(md.topics[t].partitions.keys()),
          "error =", md.topics[t].error)
except Exception as e:
    print("CreateTopics FAILED:", repr(e))

# 1b) CreateTopics on existing topic
try:
    create_topic(t, 3)
    print("CreateTopics on existing topic: no error")
except Exception as e:
    print("CreateTopics on existing topic ->", repr(e))

# 2) Auto-create via Metadata request (librdkafka allow.auto.create.topics=true on a consumer)
t2 = uniq("a-auto-md")
c = Consumer({"bootstrap.servers": BOOT, "group.id": uniq("g"), "allow.auto.create.topics": True})
md = c.list_topics(t2, timeout=10)
tm = md.topics.get(t2)
print("Metadata(auto-create) for", t2, "->", None if tm is None else (tm.error, sorted(tm.partitions.keys())))
c.close()
time.sleep(0.5)
md = admin().list_topics(timeout=10)
print("  topic exists afterwards:", t2 in md.topics)

# 3) Auto-create via producing to an unknown topic
t3 = uniq("a-auto-prod")
p = Producer({"bootstrap.servers": BOOT, "message.timeout.ms": 8000})
res = []
p.produce(t3, b"v", on_delivery=lambda e, m: res.append((e, m.partition() if m else None, m.offset() if m else None)))
p.flush(10)
print("produce to unknown topic ->", res)
md = admin().list_topics(t3, timeout=10)
tm = md.topics.get(t3)
print("  metadata afterwards:", None if tm is None else (tm.error, sorted(tm.partitions.keys())))
