"""`gaia dns`: a cluster's service registry as DNS (A, AAAA and SRV records; see names.py).

One process per cluster, run by the operator beside the masters; it reads etcd directly (the
design's one other etcd reader besides masters and nodes) so that a query never waits on a
master or on etcd:

  etcd services/ --PrefixMirror (range read + watch)--> cache.Cache (prebuilt records.Answer
  per question) <--dict lookup-- responder.Responder <-- server.DnsServer (UDP loop, TCP)

Only instances whose registry entry is resolvable (no health check, or healthy) get records;
an entry leaves when the node removes it or the node's lease expires, and the watch brings
that to the cache within milliseconds.
"""
