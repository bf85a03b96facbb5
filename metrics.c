/* metrics.c - /metrics (see metrics.h).  It owns no state: every figure is
 * read from the server, the node or /proc when a scrape asks, so nothing on
 * the request path counts anything for it. */
#include "metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "mvcc.h"
#include "node.h"
#include "raft.h"
#include "server.h"
#include "version.h"

/* v as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it, which is what
 * Prometheus' Go client prints: the fewest digits that read back as v, in
 * exponent form from 1e+06 up (2.147483648e+09, 0.25, 42). */
static void go_float(char *out, size_t cap, double v)
{
    if (v == 0) {
        snprintf(out, cap, "0");
        return;
    }
    char tmp[40];
    int nd = 1;
    for (; nd < 17; nd++) {
        snprintf(tmp, sizeof tmp, "%.*e", nd - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    snprintf(tmp, sizeof tmp, "%.*e", nd - 1, v);
    int exp = atoi(strchr(tmp, 'e') + 1);
    if (exp < -4 || exp >= 6)
        snprintf(out, cap, "%s", tmp);
    else
        snprintf(out, cap, "%.*f", nd - 1 - exp > 0 ? nd - 1 - exp : 0, v);
}

/* One family of one sample: HELP and TYPE as etcd prints them, then the
 * sample (labels: "" or "{name=\"value\"}"). */
static int family(struct mem_buf *b, const char *name, const char *type, const char *help,
                  const char *labels, double v)
{
    char num[48];
    go_float(num, sizeof num, v);
    return mem_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", name, help, name, type, name, labels,
                          num);
}

void metrics_observe(struct metrics_hist *h, double seconds)
{
    double le = 0.001;
    for (int i = 0; i < METRICS_DISK_BUCKETS; i++, le *= 2)
        if (seconds <= le) {
            h->h_buckets[i]++;
            break;
        }
    h->h_count++;
    h->h_sum += seconds;
}

double metrics_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A histogram family: cumulative buckets, +Inf, sum and count. */
static int histogram(struct mem_buf *b, const char *name, const char *help, const struct metrics_hist *h)
{
    char num[48], le[48];
    int rc = mem_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    double bound = 0.001;
    for (int i = 0; i < METRICS_DISK_BUCKETS; i++, bound *= 2) {
        cum += h->h_buckets[i];
        go_float(le, sizeof le, bound);
        rc |= mem_buf_printf(b, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le, cum);
    }
    go_float(num, sizeof num, h->h_sum);
    rc |= mem_buf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %s\n%s_count %" PRIu64 "\n", name,
                         h->h_count, name, num, name, h->h_count);
    return rc;
}

/* Live keys at the current revision. */
static int64_t live_keys(struct server *s)
{
    struct mem_arena a;
    mem_arena_init(&a, 0);
    struct api_range_req req = {.key = {(const uint8_t *)"", 1}, .range_end = {(const uint8_t *)"", 1},
                                .count_only = true};
    struct api_range_resp resp = {0};
    int64_t n = mvcc_range(s->mvcc, &req, &a, &resp) == 0 ? resp.count : 0;
    mem_arena_free(&a);
    return n;
}

struct proc_stat {
    double cpu_s, start_s, vsize, rss;
    int open_fds;
    double max_fds;
};

/* Go's process collector, from /proc: utime + stime, the start time
 * (boot time + starttime ticks), virtual and resident size, descriptors. */
static void proc_read(struct proc_stat *ps)
{
    memset(ps, 0, sizeof *ps);
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')'); /* the command name may hold anything */
        unsigned long utime = 0, stime = 0, vsize = 0;
        unsigned long long start = 0;
        long rss = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                        "%llu %lu %ld",
                        &utime, &stime, &start, &vsize, &rss) == 5) {
            ps->cpu_s = (double)(utime + stime) / (double)tick;
            ps->vsize = (double)vsize;
            ps->rss = (double)rss * (double)page;
            ps->start_s = (double)start / (double)tick;
        }
    }
    f = fopen("/proc/stat", "r");
    if (f) {
        unsigned long long btime;
        while (fgets(buf, sizeof buf, f))
            if (sscanf(buf, "btime %llu", &btime) == 1)
                ps->start_s += (double)btime;
        fclose(f);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            ps->open_fds += e->d_name[0] != '.';
        closedir(d);
        ps->open_fds--; /* the directory's own descriptor */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        ps->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
}

int metrics_render(struct server *s, struct mem_buf *b)
{
    struct raft_status st;
    node_status(s->node, &st);
    char id[64];
    snprintf(id, sizeof id, "{server_id=\"%" PRIx64 "\"}", node_member_id(s->node));
    struct proc_stat ps;
    proc_read(&ps);
    int rc = 0;
    rc |= family(b, "etcd_cluster_version", "gauge",
                 "Which version is running. 1 for 'cluster_version' label with current cluster version",
                 "{cluster_version=\"3.4\"}", 1);
    rc |= family(b, "etcd_debugging_mvcc_compact_revision", "gauge",
                 "The revision of the last compaction in store.", "",
                 (double)mvcc_compact_main_rev(s->mvcc));
    rc |= family(b, "etcd_debugging_mvcc_current_revision", "gauge", "The current revision of store.", "",
                 (double)mvcc_rev(s->mvcc));
    rc |= family(b, "etcd_debugging_mvcc_keys_total", "gauge", "Total number of keys.", "",
                 (double)live_keys(s));
    rc |= histogram(b, "etcd_disk_backend_commit_duration_seconds",
                    "The latency distributions of commit called by backend.", node_commit_hist(s->node));
    rc |= histogram(b, "etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.",
                    node_fsync_hist(s->node));
    rc |= family(b, "etcd_mvcc_db_total_size_in_bytes", "gauge",
                 "Total size of the underlying database physically allocated in bytes.", "",
                 (double)node_db_size(s->node));
    rc |= family(b, "etcd_mvcc_db_total_size_in_use_in_bytes", "gauge",
                 "Total size of the underlying database logically in use in bytes.", "",
                 (double)node_db_size_in_use(s->node));
    rc |= family(b, "etcd_server_has_leader", "gauge",
                 "Whether or not a leader exists. 1 is existence, 0 is not.", "", st.lead != 0);
    rc |= family(b, "etcd_server_id", "gauge",
                 "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", id, 1);
    rc |= family(b, "etcd_server_is_leader", "gauge",
                 "Whether or not this member is a leader. 1 if is, 0 otherwise.", "", st.role == RAFT_LEADER);
    rc |= family(b, "etcd_server_leader_changes_seen_total", "counter", "The number of leader changes seen.",
                 "", (double)node_leader_changes(s->node));
    rc |= family(b, "etcd_server_proposals_applied_total", "gauge",
                 "The total number of consensus proposals applied.", "", (double)st.applied);
    rc |= family(b, "etcd_server_proposals_committed_total", "gauge",
                 "The total number of consensus proposals committed.", "", (double)st.commit);
    rc |= family(b, "etcd_server_proposals_pending", "gauge", "The current number of pending proposals to commit.",
                 "", (double)node_pending_proposals(s->node));
    rc |= family(b, "etcd_server_quota_backend_bytes", "gauge", "Current backend storage quota size in bytes.",
                 "", (double)s->cfg->quota_backend_bytes);
    rc |= family(b, "etcd_server_version", "gauge",
                 "Which version is running. 1 for 'server_version' label with current version.",
                 "{server_version=\"" ETCD_SERVER_VERSION "\"}", 1);
    rc |= family(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                 "", ps.cpu_s);
    rc |= family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.", "", ps.max_fds);
    rc |= family(b, "process_open_fds", "gauge", "Number of open file descriptors.", "", ps.open_fds);
    rc |= family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "", ps.rss);
    rc |= family(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                 "", ps.start_s);
    rc |= family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", "", ps.vsize);
    return rc ? -1 : 0;
}
