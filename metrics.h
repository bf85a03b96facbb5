/* metrics.h - the client port's /metrics: Prometheus' text format with the
 * names, types and help texts etcd 3.4 uses, for the families this server
 * can tell (leadership, proposals, the db's size and quota, the disk's
 * fsync and commit latencies, the store's keys and revisions, the
 * process). */
#ifndef ETCD_METRICS_H
#define ETCD_METRICS_H

#include <stdint.h>

#include "mem.h"

struct server;

/* A latency histogram with etcd's disk buckets (1 ms doubling to 8.192 s),
 * kept by whoever times the operation; the loop thread owns it. */
#define METRICS_DISK_BUCKETS 14
struct metrics_hist {
    uint64_t h_buckets[METRICS_DISK_BUCKETS]; /* not cumulative */
    uint64_t h_count;
    double h_sum;
};
void metrics_observe(struct metrics_hist *h, double seconds);
/* Seconds on the monotonic clock, for timing. */
double metrics_now(void);

/* Appends the exposition to b.  0 or -1 (OOM). */
int metrics_render(struct server *s, struct mem_buf *b) __attribute__((warn_unused_result));

#endif
