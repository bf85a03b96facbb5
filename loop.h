/* loop.h - the epoll event loop: file descriptors, timers, work deferred to
 * the end of the current turn, and signals.  One thread runs the loop and owns
 * all server state; callbacks run on that thread, one at a time. */
#ifndef ETCD_LOOP_H
#define ETCD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

/* events: EPOLLIN / EPOLLOUT bits; the callback gets what fired
 * (EPOLLERR/EPOLLHUP included). */
typedef void (*loop_fd_fn)(struct loop *l, int fd, uint32_t events, void *arg);
typedef void (*loop_timer_fn)(struct loop *l, void *arg);
typedef void (*loop_defer_fn)(struct loop *l, void *arg);

/* NULL on failure (errno set).  SIGINT and SIGTERM are blocked and delivered
 * through the loop: the first one stops loop_run.  loop_free waits for the
 * worker's queued jobs to finish (their done callbacks are not run). */
struct loop *loop_new(void);
void loop_free(struct loop *l);

/* 0, or -1 with errno. */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg)
    __attribute__((warn_unused_result));
int loop_mod_fd(struct loop *l, int fd, uint32_t events);
void loop_del_fd(struct loop *l, int fd);

/* Calls fn(arg) once after ms milliseconds.  Returns an id for
 * loop_timer_cancel, or 0 on OOM. */
uint64_t loop_timer_add(struct loop *l, uint64_t ms, loop_timer_fn fn, void *arg);
void loop_timer_cancel(struct loop *l, uint64_t id);

/* Calls fn(arg) once, after the fd events of this turn have been handled
 * (e.g. to flush every connection written to in this turn with one syscall
 * each, or to group-commit).  Returns 0 or -1 on OOM. */
int loop_defer(struct loop *l, loop_defer_fn fn, void *arg) __attribute__((warn_unused_result));

/* Runs work(arg) on one of the loop's worker threads (a lane), then
 * done(arg) back on the loop thread.  A lane runs its jobs one at a time in
 * submission order; lanes run side by side, so a long job on one (a
 * backend commit) does not hold up another's (a WAL fdatasync).  The
 * workers are where blocking disk work goes so the loop keeps serving.
 * work must not touch loop-owned state.  A lane's thread starts on its
 * first job.  0, or -1 on OOM or if the thread cannot be started. */
#define LOOP_LANES 2
typedef void (*loop_work_fn)(void *arg);
int loop_work_on(struct loop *l, unsigned lane, loop_work_fn work, loop_defer_fn done, void *arg)
    __attribute__((warn_unused_result));
/* loop_work_on lane 0. */
int loop_work(struct loop *l, loop_work_fn work, loop_defer_fn done, void *arg)
    __attribute__((warn_unused_result));

/* Blocks until every lane has run every queued job (their done callbacks
 * are not run: for shutdown, after loop_run returned). */
void loop_wait_worker(struct loop *l);

/* Monotonic milliseconds, read once per turn. */
uint64_t loop_now_ms(const struct loop *l);

/* Runs until loop_stop or SIGINT/SIGTERM.  Returns the signal number that
 * stopped it, or 0. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
