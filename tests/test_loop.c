/* test_loop.c - the event loop: timers in order and cancelled, deferred work
 * after the turn's events, worker jobs completing in order on the loop
 * thread, fd events, and SIGTERM stopping the loop. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

static char trace[256];
static size_t ntrace;

static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;

static void mark(char c) /* called from both threads */
{
    pthread_mutex_lock(&trace_mu);
    if (ntrace < sizeof trace - 1)
        trace[ntrace++] = c;
    trace[ntrace] = 0;
    pthread_mutex_unlock(&trace_mu);
}

static void on_timer(struct loop *l, void *arg)
{
    (void)l;
    mark(*(const char *)arg);
}

static void stop_timer(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

static void test_timers(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    ntrace = 0;
    assert_true(loop_timer_add(l, 30, on_timer, "c") > 0);
    assert_true(loop_timer_add(l, 10, on_timer, "a") > 0);
    uint64_t x = loop_timer_add(l, 20, on_timer, "x");
    assert_true(loop_timer_add(l, 20, on_timer, "b") > 0);
    loop_timer_cancel(l, x);
    assert_true(loop_timer_add(l, 40, stop_timer, NULL) > 0);
    assert_int_equal(loop_run(l), 0);
    assert_string_equal(trace, "abc");
    loop_free(l);
}

static pthread_t loop_thread;
static int done_on_loop_thread;

static void job_work(void *arg)
{
    /* a job sees the jobs before it finished: FIFO */
    mark(*(const char *)arg);
    usleep(1000);
}

static void job_done(struct loop *l, void *arg)
{
    if (pthread_equal(pthread_self(), loop_thread))
        done_on_loop_thread++;
    mark((char)(*(const char *)arg - 'a' + 'A'));
    if (*(const char *)arg == 'c')
        loop_stop(l);
}

static void test_worker(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    ntrace = 0;
    loop_thread = pthread_self();
    done_on_loop_thread = 0;
    assert_int_equal(loop_work(l, job_work, job_done, "a"), 0);
    assert_int_equal(loop_work(l, job_work, job_done, "b"), 0);
    assert_int_equal(loop_work(l, job_work, job_done, "c"), 0);
    assert_int_equal(loop_run(l), 0);
    /* work in order, done in order, each done after its work */
    assert_int_equal(strlen(trace), 6);
    assert_true(strchr(trace, 'a') < strchr(trace, 'A'));
    assert_true(strchr(trace, 'A') < strchr(trace, 'B') && strchr(trace, 'B') < strchr(trace, 'C'));
    assert_true(strchr(trace, 'a') < strchr(trace, 'b') && strchr(trace, 'b') < strchr(trace, 'c'));
    assert_int_equal(done_on_loop_thread, 3);
    /* a job still queued when the loop is freed runs, its done does not */
    assert_int_equal(loop_work(l, job_work, job_done, "d"), 0);
    loop_free(l);
    assert_non_null(strchr(trace, 'd'));
    assert_null(strchr(trace, 'D'));
}

/* Lane 1's job waits until lane 0's has run: lanes run side by side. */
static int lane0_ran;

static void lane0_work(void *arg)
{
    (void)arg;
    mark('0');
    __atomic_store_n(&lane0_ran, 1, __ATOMIC_RELEASE);
}

static void lane1_work(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5000 && !__atomic_load_n(&lane0_ran, __ATOMIC_ACQUIRE); i++)
        usleep(1000);
    mark('1');
}

static int lanes_done;

static void lane_done(struct loop *l, void *arg)
{
    (void)arg;
    if (++lanes_done == 2)
        loop_stop(l);
}

static void test_lanes(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    ntrace = 0;
    lane0_ran = lanes_done = 0;
    assert_int_equal(loop_work_on(l, 1, lane1_work, lane_done, NULL), 0);
    assert_int_equal(loop_work_on(l, 0, lane0_work, lane_done, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_string_equal(trace, "01");
    assert_int_equal(lanes_done, 2);
    loop_free(l);
}

static int pipefd[2];

static void deferred(struct loop *l, void *arg)
{
    (void)arg;
    mark('D');
    loop_stop(l);
}

static void on_readable(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)arg;
    assert_true(events & EPOLLIN);
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    mark(c);
    assert_int_equal(loop_defer(l, deferred, NULL), 0);
    mark('E'); /* the deferred call runs after this callback returns */
}

static void test_fd_and_defer(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    ntrace = 0;
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(loop_add_fd(l, pipefd[0], EPOLLIN, on_readable, NULL), 0);
    assert_int_equal(write(pipefd[1], "r", 1), 1);
    assert_int_equal(loop_run(l), 0);
    assert_string_equal(trace, "rED");
    loop_del_fd(l, pipefd[0]);
    close(pipefd[0]);
    close(pipefd[1]);
    loop_free(l);
}

static void send_term(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
    kill(getpid(), SIGTERM);
}

static void test_signal_stops(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    assert_non_null(l);
    assert_true(loop_timer_add(l, 1, send_term, NULL) > 0);
    assert_int_equal(loop_run(l), SIGTERM);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_worker),
        cmocka_unit_test(test_lanes),
        cmocka_unit_test(test_fd_and_defer),
        cmocka_unit_test(test_signal_stops),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
