/* metrics.h - the client port's /metrics: Prometheus' text format with the
 * names, types and help texts etcd 3.4 uses, for the families this server
 * can tell (leadership, proposals, the db's size and quota, the store's
 * keys and revisions, the process). */
#ifndef ETCD_METRICS_H
#define ETCD_METRICS_H

#include "mem.h"

struct server;

/* Appends the exposition to b.  0 or -1 (OOM). */
int metrics_render(struct server *s, struct mem_buf *b) __attribute__((warn_unused_result));

#endif
