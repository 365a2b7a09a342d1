/* The worker thread runs jobs off the loop, in order, and hands each back to the loop
 * thread in the same order; stopping drains everything, follow-up jobs included. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <uv.h>

#include "server/worker.h"

Suite *test_server_worker_suite(void);

enum { JOBS = 200 };

struct test_job {
    struct srv_job job;
    int seq;
    pthread_t ran_on;
    int *done_order;
    int *done_n;
    struct srv_worker *worker;
    bool resubmit;
};

static pthread_t loop_thread;

static void job_run(struct srv_job *job)
{
    struct test_job *t = (struct test_job *)job;
    t->ran_on = pthread_self();
}

static void job_done(struct srv_job *job)
{
    struct test_job *t = (struct test_job *)job;
    ck_assert(pthread_equal(pthread_self(), loop_thread));
    ck_assert(!pthread_equal(t->ran_on, loop_thread));
    t->done_order[(*t->done_n)++] = t->seq;
    if (t->resubmit) {
        t->resubmit = false;
        t->seq += 1000;
        srv_worker_submit(t->worker, &t->job);
    }
}

static struct test_job *make_jobs(struct srv_worker *w, int *order, int *n, bool resubmit)
{
    struct test_job *jobs = calloc(JOBS, sizeof(*jobs));
    for (int i = 0; i < JOBS; i++) {
        jobs[i].job.run_cb = job_run;
        jobs[i].job.done_cb = job_done;
        jobs[i].seq = i;
        jobs[i].done_order = order;
        jobs[i].done_n = n;
        jobs[i].worker = w;
        jobs[i].resubmit = resubmit;
    }
    return jobs;
}

static void on_closed(struct srv_worker *w, void *data)
{
    (void)w;
    *(int *)data += 1;
}

START_TEST(test_worker_runs_off_loop_and_completes_in_order)
{
    loop_thread = pthread_self();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv_worker w;
    ck_assert_int_eq(srv_worker_start(&w, &loop, "test-worker"), 0);
    int order[JOBS];
    int n = 0;
    int closed = 0;
    struct test_job *jobs = make_jobs(&w, order, &n, false);
    for (int i = 0; i < JOBS; i++)
        srv_worker_submit(&w, &jobs[i].job);
    for (int spins = 0; n < JOBS && spins < 100000; spins++)
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(n, JOBS);
    for (int i = 0; i < JOBS; i++)
        ck_assert_int_eq(order[i], i);
    srv_worker_stop(&w, on_closed, &closed);
    ck_assert_int_eq(closed, 0); /* only once the loop ran the close */
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(closed, 1);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    free(jobs);
}
END_TEST

START_TEST(test_worker_stop_drains_follow_up_jobs)
{
    loop_thread = pthread_self();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv_worker w;
    ck_assert_int_eq(srv_worker_start(&w, &loop, "test-worker"), 0);
    int order[2 * JOBS];
    int n = 0;
    int closed = 0;
    struct test_job *jobs = make_jobs(&w, order, &n, true);
    for (int i = 0; i < JOBS; i++)
        srv_worker_submit(&w, &jobs[i].job);
    srv_worker_stop(&w, on_closed, &closed); /* without running the loop first */
    ck_assert_int_eq(n, 2 * JOBS);
    for (int i = 0; i < JOBS; i++)
        ck_assert_int_eq(order[i], i);
    ck_assert_int_eq(closed, 0); /* only once the loop ran the close */
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(closed, 1);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    free(jobs);
}
END_TEST

Suite *test_server_worker_suite(void)
{
    Suite *s = suite_create("server_worker");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_worker_runs_off_loop_and_completes_in_order);
    tcase_add_test(tc, test_worker_stop_drains_follow_up_jobs);
    suite_add_tcase(s, tc);
    return s;
}
