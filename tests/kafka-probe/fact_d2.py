# Fact d (extra): does an abandoned transaction time out (transaction.timeout.ms=2000)?
import subprocess
from common import *
t = uniq("d3"); create_topic(t, 1)
A = txn_producer(uniq("tx-X"), **{"transaction.timeout.ms": 2000}); A.init_transactions(10)
A.begin_transaction()
for i in range(3): A.produce(t, value=b"abandoned-%d" % i, partition=0)
A.flush(10)
time.sleep(12)
out = subprocess.run(["./dump", BOOT, t], capture_output=True, text=True, timeout=60).stdout
print("12 s after an open txn with transaction.timeout.ms=2000 (producer still alive, idle):")
print("\n".join(l for l in out.splitlines() if l.split(" ")[0] in ("PART", "MARK", "SUMMARY")))
