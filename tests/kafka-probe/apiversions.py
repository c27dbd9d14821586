# Raw ApiVersions v0 request to list the API key/version ranges tansu supports.
import socket, struct, sys
addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:19092"
h, p = addr.split(":")
s = socket.create_connection((h, int(p)))
cid = b"probe"
body = struct.pack(">hhih", 18, 0, 1, len(cid)) + cid
s.sendall(struct.pack(">i", len(body)) + body)
def rd(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b)); assert c; b += c
    return b
n, = struct.unpack(">i", rd(4)); r = rd(n)
corr, err, cnt = struct.unpack(">ihi", r[:10])
names = {0:"Produce",1:"Fetch",2:"ListOffsets",3:"Metadata",8:"OffsetCommit",9:"OffsetFetch",10:"FindCoordinator",11:"JoinGroup",18:"ApiVersions",19:"CreateTopics",22:"InitProducerId",24:"AddPartitionsToTxn",25:"AddOffsetsToTxn",26:"EndTxn",28:"TxnOffsetCommit",37:"CreatePartitions",32:"DescribeConfigs",60:"DescribeCluster",61:"DescribeProducers",65:"DescribeTransactions",66:"ListTransactions"}
print("error", err)
for i in range(cnt):
    k, lo, hi = struct.unpack(">hhh", r[10+6*i:16+6*i])
    print(k, names.get(k, "?"), lo, hi)
