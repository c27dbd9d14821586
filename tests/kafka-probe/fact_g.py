# Probe: a transactional commit in flight while a new producer with the same transactional.id
# initialises, then reads the group offset the first committed, and re-sends if it is missing.
import sys, threading, time, random, uuid
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
bs = sys.argv[1]; rounds = int(sys.argv[2])
run = uuid.uuid4().hex[:6]
topic = f"race-{run}"
adm = AdminClient({"bootstrap.servers": bs}); adm.create_topics([NewTopic(topic, 1, 1)])[topic].result()
N = 50
resent = 0; stats = {"p1_commit_ok": 0, "p1_commit_err": 0, "both_committed": 0, "last_ok": False}
for k in range(rounds):
    tid = f"t-{run}-{k}"
    p1 = Producer({"bootstrap.servers": bs, "transactional.id": tid, "linger.ms": 0})
    p1.init_transactions(30)
    g = Consumer({"bootstrap.servers": bs, "group.id": tid, "enable.auto.commit": False})
    p1.begin_transaction()
    for i in range(N):
        p1.produce(topic, key=tid, value=f"{k}-{i}")
    p1.flush(30)
    p1.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], g.consumer_group_metadata(), 30)
    def commit():
        try:
            stats["last_ok"] = False
            p1.commit_transaction(30); stats["p1_commit_ok"] += 1; stats["last_ok"] = True
        except KafkaException as e:
            stats["p1_commit_err"] += 1
    p2 = Producer({"bootstrap.servers": bs, "transactional.id": tid, "linger.ms": 0})
    p2.list_topics(topic, 10)
    t = threading.Thread(target=commit); t.start()
    time.sleep(random.uniform(0, float(sys.argv[3])))
    p2.init_transactions(30)
    off = g.committed([TopicPartition(topic, 0)], 30)[0].offset
    if off < 1:
        resent += 1
        p2.begin_transaction()
        for i in range(N):
            p2.produce(topic, key=tid, value=f"{k}-{i}")
        p2.flush(30)
        p2.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], g.consumer_group_metadata(), 30)
        p2.commit_transaction(30)
    t.join()
    if off < 1 and stats["last_ok"]: stats["both_committed"] += 1
    g.close()
time.sleep(1)
c = Consumer({"bootstrap.servers": bs, "group.id": f"reader-{run}", "isolation.level": "read_committed", "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, 0)])
seen = {}
idle = time.time()
while time.time() - idle < 5:
    m = c.poll(0.5)
    if m is None or m.error(): continue
    idle = time.time()
    seen[m.value()] = seen.get(m.value(), 0) + 1
dups = sum(1 for v in seen.values() if v > 1)
missing = rounds * N - len(seen)
lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), 10)
print(f"topic high watermark {hi}; read_committed reader reached offset {c.position([TopicPartition(topic,0)])[0].offset}")
print(f"topic {topic}")
print(f"rounds {rounds}, resent {resent}, p1 {stats}, distinct {len(seen)}, duplicated {dups}, missing {missing}")
