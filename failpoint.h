/* failpoint.h - crash points at the durability boundaries, for the crash
 * tests.  In the test build (ETCD_TEST_BUILD), ETCD_FAILPOINT=name[:n] makes
 * the n-th (default first) pass through the point called name end the
 * process at once, as a power cut or kill -9 would, and
 * ETCD_FAILPOINT=name:sleepMS makes every pass wait MS milliseconds, as a
 * slow disk would; in the release build the points compile to nothing. */
#ifndef ETCD_FAILPOINT_H
#define ETCD_FAILPOINT_H

#ifdef ETCD_TEST_BUILD
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void failpoint(const char *name)
{
    static _Thread_local long hits;
    const char *fp = getenv("ETCD_FAILPOINT");
    size_t n = strlen(name);
    if (!fp || strncmp(fp, name, n) || (fp[n] != 0 && fp[n] != ':'))
        return;
    if (fp[n] == ':' && !strncmp(fp + n + 1, "sleep", 5)) {
        usleep((useconds_t)atol(fp + n + 6) * 1000);
        return;
    }
    long at = fp[n] == ':' ? atol(fp + n + 1) : 1;
    if (++hits >= at)
        _exit(86);
}
#else
#define failpoint(name) ((void)0)
#endif

#endif
