/* loop.c - epoll event loop with timers, deferred work, signals and worker
 * threads (lanes) for blocking disk work (loop.h).  It owns the epoll,
 * signal and event descriptors, the timer heap and the workers' job queues;
 * the fds it watches belong to their callers. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"

struct loop_fdent {
    loop_fd_fn fn;
    void *arg;
    bool used;
};

struct loop_timer {
    uint64_t due;
    uint64_t id;
    loop_timer_fn fn;
    void *arg;
};

struct loop_deferred {
    loop_defer_fn fn;
    void *arg;
};

/* A job travels: loop thread -> todo queue -> worker -> done queue -> loop
 * thread.  Both queues are guarded by the worker mutex; nothing else is
 * shared between the threads. */
struct loop_job {
    loop_work_fn work;
    loop_defer_fn done;
    void *arg;
    struct loop_job *next;
};

struct loop_worker {
    struct loop *loop;
    pthread_t thread;
    bool started;
    bool quit;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t idle_cv; /* signalled when a job finishes */
    bool busy;              /* a job is running */
    struct loop_job *todo, **todo_tail; /* owned, FIFO */
    struct loop_job *done, **done_tail; /* owned, FIFO */
};

struct loop {
    int epfd;
    int sigfd;
    int efd; /* eventfd: a worker finished jobs */
    struct loop_worker w[LOOP_LANES];
    bool stop;
    int stop_signal;
    uint64_t now;
    struct loop_fdent *fds; /* indexed by fd; owned */
    size_t n_fds;
    struct loop_timer *timers; /* binary min-heap on due; owned */
    size_t n_timers, cap_timers;
    uint64_t next_timer_id;
    struct loop_deferred *defer; /* owned */
    size_t n_defer, cap_defer;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
    struct loop *l = mem_calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        goto fail_alloc;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    l->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (l->sigfd < 0)
        goto fail_ep;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->sigfd, &ev) < 0)
        goto fail_sig;
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd < 0)
        goto fail_sig;
    ev = (struct epoll_event){.events = EPOLLIN, .data.fd = -2};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->efd, &ev) < 0)
        goto fail_efd;
    for (unsigned i = 0; i < LOOP_LANES; i++) {
        struct loop_worker *w = &l->w[i];
        w->loop = l;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        pthread_cond_init(&w->idle_cv, NULL);
        w->todo_tail = &w->todo;
        w->done_tail = &w->done;
    }
    l->now = mono_ms();
    l->next_timer_id = 1;
    return l;
fail_efd:
    close(l->efd);
fail_sig:
    close(l->sigfd);
fail_ep:
    close(l->epfd);
fail_alloc:
    mem_free(l);
    return NULL;
}

static void worker_stop(struct loop_worker *w);

void loop_free(struct loop *l)
{
    if (!l)
        return;
    for (unsigned i = 0; i < LOOP_LANES; i++)
        worker_stop(&l->w[i]);
    close(l->efd);
    close(l->sigfd);
    close(l->epfd);
    mem_free(l->fds);
    mem_free(l->timers);
    mem_free(l->defer);
    mem_free(l);
}

/* ---- file descriptors ---- */

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if ((size_t)fd >= l->n_fds) {
        size_t n = l->n_fds ? l->n_fds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct loop_fdent *f = mem_realloc(l->fds, n * sizeof *f);
        if (!f) {
            errno = ENOMEM;
            return -1;
        }
        memset(f + l->n_fds, 0, (n - l->n_fds) * sizeof *f);
        l->fds = f;
        l->n_fds = n;
    }
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -1;
    l->fds[fd] = (struct loop_fdent){fn, arg, true};
    return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void loop_del_fd(struct loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_fds || !l->fds[fd].used)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->fds[fd].used = false;
}

/* ---- timers: a binary heap ordered by due time ---- */

static void heap_swap(struct loop *l, size_t a, size_t b)
{
    struct loop_timer t = l->timers[a];
    l->timers[a] = l->timers[b];
    l->timers[b] = t;
}

static void heap_up(struct loop *l, size_t i)
{
    while (i > 0 && l->timers[(i - 1) / 2].due > l->timers[i].due) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct loop *l, size_t i)
{
    for (;;) {
        size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
        if (a < l->n_timers && l->timers[a].due < l->timers[m].due)
            m = a;
        if (b < l->n_timers && l->timers[b].due < l->timers[m].due)
            m = b;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

static void heap_remove(struct loop *l, size_t i)
{
    l->timers[i] = l->timers[--l->n_timers];
    if (i < l->n_timers) {
        heap_down(l, i);
        heap_up(l, i);
    }
}

uint64_t loop_timer_add(struct loop *l, uint64_t ms, loop_timer_fn fn, void *arg)
{
    if (l->n_timers == l->cap_timers) {
        size_t n = l->cap_timers ? l->cap_timers * 2 : 16;
        struct loop_timer *t = mem_realloc(l->timers, n * sizeof *t);
        if (!t)
            return 0;
        l->timers = t;
        l->cap_timers = n;
    }
    uint64_t id = l->next_timer_id++;
    l->timers[l->n_timers] = (struct loop_timer){mono_ms() + ms, id, fn, arg};
    heap_up(l, l->n_timers++);
    return id;
}

void loop_timer_cancel(struct loop *l, uint64_t id)
{
    /* timers are few (per-server housekeeping, not per request): linear is fine */
    for (size_t i = 0; i < l->n_timers; i++)
        if (l->timers[i].id == id) {
            heap_remove(l, i);
            return;
        }
}

static void run_timers(struct loop *l)
{
    while (l->n_timers && l->timers[0].due <= l->now) {
        struct loop_timer t = l->timers[0];
        heap_remove(l, 0);
        t.fn(l, t.arg);
    }
}

/* ---- deferred work ---- */

int loop_defer(struct loop *l, loop_defer_fn fn, void *arg)
{
    if (l->n_defer == l->cap_defer) {
        size_t n = l->cap_defer ? l->cap_defer * 2 : 64;
        struct loop_deferred *d = mem_realloc(l->defer, n * sizeof *d);
        if (!d)
            return -1;
        l->defer = d;
        l->cap_defer = n;
    }
    l->defer[l->n_defer++] = (struct loop_deferred){fn, arg};
    return 0;
}

static void run_deferred(struct loop *l)
{
    /* a deferred call may defer more work: it runs in this same pass */
    for (size_t i = 0; i < l->n_defer; i++)
        l->defer[i].fn(l, l->defer[i].arg);
    l->n_defer = 0;
}

/* ---- the worker thread ---- */

static void *worker_main(void *arg)
{
    struct loop_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->todo && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->todo)
            break; /* quit, and nothing left to do */
        struct loop_job *j = w->todo;
        w->todo = j->next;
        if (!w->todo)
            w->todo_tail = &w->todo;
        w->busy = true;
        pthread_mutex_unlock(&w->mu);
        j->work(j->arg);
        pthread_mutex_lock(&w->mu);
        w->busy = false;
        pthread_cond_broadcast(&w->idle_cv);
        j->next = NULL;
        *w->done_tail = j;
        w->done_tail = &j->next;
        uint64_t one = 1;
        /* cannot fail short of the counter overflowing */
        (void)!write(w->loop->efd, &one, sizeof one);
    }
    pthread_mutex_unlock(&w->mu);
    mem_release_cache();
    return NULL;
}

int loop_work(struct loop *l, loop_work_fn work, loop_defer_fn done, void *arg)
{
    return loop_work_on(l, 0, work, done, arg);
}

int loop_work_on(struct loop *l, unsigned lane, loop_work_fn work, loop_defer_fn done, void *arg)
{
    struct loop_worker *w = &l->w[lane];
    struct loop_job *j = mem_alloc(sizeof *j);
    if (!j)
        return -1;
    *j = (struct loop_job){work, done, arg, NULL};
    pthread_mutex_lock(&w->mu);
    if (!w->started) {
        /* started on first use: a server that never writes has no thread */
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_mutex_unlock(&w->mu);
            mem_free(j);
            return -1;
        }
        w->started = true;
    }
    *w->todo_tail = j;
    w->todo_tail = &j->next;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

static void run_completions(struct loop *l)
{
    uint64_t n;
    if (read(l->efd, &n, sizeof n) < 0 && errno != EAGAIN)
        return;
    for (unsigned i = 0; i < LOOP_LANES; i++) {
        struct loop_worker *w = &l->w[i];
        pthread_mutex_lock(&w->mu);
        struct loop_job *j = w->done;
        w->done = NULL;
        w->done_tail = &w->done;
        pthread_mutex_unlock(&w->mu);
        while (j) {
            struct loop_job *next = j->next;
            if (j->done)
                j->done(l, j->arg);
            mem_free(j);
            j = next;
        }
    }
}

void loop_wait_worker(struct loop *l)
{
    for (unsigned i = 0; i < LOOP_LANES; i++) {
        struct loop_worker *w = &l->w[i];
        pthread_mutex_lock(&w->mu);
        while (w->todo || w->busy)
            pthread_cond_wait(&w->idle_cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
}

static void worker_stop(struct loop_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_signal(&w->cv);
    bool started = w->started;
    pthread_mutex_unlock(&w->mu);
    if (started)
        pthread_join(w->thread, NULL);
    for (struct loop_job *j = w->done, *n; j; j = n) {
        n = j->next;
        mem_free(j);
    }
    w->done = NULL;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
}

/* ---- running ---- */

uint64_t loop_now_ms(const struct loop *l)
{
    return l->now;
}

void loop_stop(struct loop *l)
{
    l->stop = true;
}

static void read_signals(struct loop *l)
{
    struct signalfd_siginfo si;
    while (read(l->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        l->stop = true;
        l->stop_signal = (int)si.ssi_signo;
    }
}

int loop_run(struct loop *l)
{
    struct epoll_event evs[256];
    while (!l->stop) {
        int timeout = -1;
        if (l->n_defer)
            timeout = 0;
        else if (l->n_timers) {
            uint64_t now = mono_ms();
            timeout = l->timers[0].due <= now ? 0 : (int)(l->timers[0].due - now);
        }
        int n = epoll_wait(l->epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR)
            return -1;
        l->now = mono_ms();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == -1) {
                read_signals(l);
                continue;
            }
            if (fd == -2) {
                run_completions(l);
                continue;
            }
            /* an earlier callback in this batch may have closed fd */
            if ((size_t)fd < l->n_fds && l->fds[fd].used)
                l->fds[fd].fn(l, fd, evs[i].events, l->fds[fd].arg);
        }
        run_timers(l);
        run_deferred(l);
    }
    return l->stop_signal;
}
