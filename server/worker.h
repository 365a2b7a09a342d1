/* A dedicated thread that runs blocking jobs (WAL write + fdatasync, LMDB apply, snapshot
 * copies) off the libuv loop, and hands each job back to the loop when it is done. It is
 * ketchd's only synchronisation point between threads (STYLE.md §6): a job belongs to the
 * worker from srv_worker_submit() until its done_cb runs on the loop; the loop neither
 * reads nor frees it meanwhile. Jobs run one at a time, in submission order, and their
 * done_cbs run in the same order. libuv's shared threadpool is not used, so an fsync never
 * waits behind a getaddrinfo. */
#ifndef KETCH_SERVER_WORKER_H
#define KETCH_SERVER_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/assert.h"

struct srv_job;
typedef void (*srv_job_run_cb)(struct srv_job *job);  /* on the worker thread */
typedef void (*srv_job_done_cb)(struct srv_job *job); /* on the loop thread */

/* Embed in the caller's job struct; the worker never allocates. */
struct srv_job {
    srv_job_run_cb run_cb;
    srv_job_done_cb done_cb;
    uint64_t run_ns;      /* how long run_cb took, set before done_cb (for metrics) */
    struct srv_job *next; /* owned by the worker while queued */
};

struct srv_worker;
/* Called once the worker's handle is closed: from then on its memory may be freed. */
typedef void (*srv_worker_closed_cb)(struct srv_worker *w, void *data);

struct srv_worker {
    uv_loop_t *loop;
    uv_async_t async; /* wakes the loop to run done_cbs */
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    struct srv_job *todo_head; /* submitted, not yet run; guarded by mutex */
    struct srv_job *todo_tail;
    struct srv_job *done_head; /* run, waiting for their done_cb; guarded by mutex */
    struct srv_job *done_tail;
    bool stopping; /* guarded by mutex */
    bool started;
    unsigned in_flight; /* loop thread only: submitted minus done */
    srv_worker_closed_cb closed_cb;
    void *closed_data;
    char name[16];
};

/* Starts the thread (named name, for ps and gdb) on loop. 0 or a negative errno. */
K_MUST_USE int srv_worker_start(struct srv_worker *w, uv_loop_t *loop, const char *name);

/* Queues job; job->run_cb and done_cb must be set. Loop thread only. */
void srv_worker_submit(struct srv_worker *w, struct srv_job *job);

/* Runs every queued job to completion, their done_cbs included (which may submit more, here
 * or to other workers), without stopping the thread. Loop thread only. */
void srv_worker_drain(struct srv_worker *w);

/* Runs every queued job to completion (their done_cbs included), then stops the thread and
 * closes the async handle; the loop must run afterwards for the close to finish, and only
 * closed_cb (may be NULL) says the struct may be freed. Loop thread only. */
void srv_worker_stop(struct srv_worker *w, srv_worker_closed_cb closed_cb, void *data);

#endif
