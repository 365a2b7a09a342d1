/* One worker thread, a mutex-guarded FIFO in and out, uv_async to the loop; see
 * server/worker.h. */
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"

static void push(struct srv_job **head, struct srv_job **tail, struct srv_job *job)
{
    job->next = NULL;
    if (*tail) {
        (*tail)->next = job;
    } else {
        *head = job;
    }
    *tail = job;
}

static struct srv_job *take_all(struct srv_job **head, struct srv_job **tail)
{
    struct srv_job *all = *head;
    *head = NULL;
    *tail = NULL;
    return all;
}

static void *worker_main(void *arg)
{
    struct srv_worker *w = arg;
    pthread_mutex_lock(&w->mutex);
    for (;;) {
        while (!w->todo_head && !w->stopping)
            pthread_cond_wait(&w->cond, &w->mutex);
        if (!w->todo_head) break; /* stopping and drained */
        struct srv_job *job = w->todo_head;
        w->todo_head = job->next;
        if (!w->todo_head) w->todo_tail = NULL;
        pthread_mutex_unlock(&w->mutex);
        uint64_t start = k_mono_ns();
        job->run_cb(job);
        job->run_ns = k_mono_ns() - start;
        pthread_mutex_lock(&w->mutex);
        push(&w->done_head, &w->done_tail, job);
        pthread_mutex_unlock(&w->mutex);
        /* Woken after the unlock, the loop does not block on the mutex at once. The handle
         * outlives this call: srv_worker_stop joins the thread before closing it. */
        pthread_cond_broadcast(&w->cond); /* srv_worker_stop may be waiting for it */
        uv_async_send(&w->async);
        pthread_mutex_lock(&w->mutex);
    }
    pthread_mutex_unlock(&w->mutex);
    return NULL;
}

static void run_done(struct srv_worker *w)
{
    pthread_mutex_lock(&w->mutex);
    struct srv_job *job = take_all(&w->done_head, &w->done_tail);
    pthread_mutex_unlock(&w->mutex);
    while (job) {
        struct srv_job *next = job->next; /* done_cb may free or resubmit job */
        k_assert(w->in_flight > 0);
        w->in_flight--;
        job->done_cb(job);
        job = next;
    }
}

static void on_async(uv_async_t *handle)
{
    run_done(handle->data);
}

int srv_worker_start(struct srv_worker *w, uv_loop_t *loop, const char *name)
{
    memset(w, 0, sizeof(*w));
    w->loop = loop;
    snprintf(w->name, sizeof(w->name), "%s", name);
    int rc = uv_async_init(loop, &w->async, on_async);
    if (rc < 0) return rc;
    w->async.data = w;
    pthread_mutex_init(&w->mutex, NULL);
    pthread_cond_init(&w->cond, NULL);
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        uv_close((uv_handle_t *)&w->async, NULL);
        return -rc;
    }
    pthread_setname_np(w->thread, w->name);
    w->started = true;
    return 0;
}

void srv_worker_submit(struct srv_worker *w, struct srv_job *job)
{
    k_assert(w->started);
    k_assert(job->run_cb != NULL && job->done_cb != NULL);
    w->in_flight++;
    pthread_mutex_lock(&w->mutex);
    push(&w->todo_head, &w->todo_tail, job);
    pthread_mutex_unlock(&w->mutex);
    /* After the unlock, so the woken thread does not block on the mutex at once (a wake-up
     * costs tens of microseconds on a virtual machine). It rechecks todo under the mutex. */
    pthread_cond_signal(&w->cond);
}

static void on_async_closed(uv_handle_t *h)
{
    struct srv_worker *w = h->data;
    if (w->closed_cb) w->closed_cb(w, w->closed_data);
}

void srv_worker_drain(struct srv_worker *w)
{
    while (w->started && w->in_flight > 0) {
        pthread_mutex_lock(&w->mutex);
        while (!w->done_head)
            pthread_cond_wait(&w->cond, &w->mutex);
        pthread_mutex_unlock(&w->mutex);
        run_done(w);
    }
}

void srv_worker_stop(struct srv_worker *w, srv_worker_closed_cb closed_cb, void *data)
{
    if (!w->started) {
        if (closed_cb) closed_cb(w, data);
        return;
    }
    w->closed_cb = closed_cb;
    w->closed_data = data;
    /* Drain: done_cbs may submit follow-up jobs (the raft pipeline does), so loop until
     * nothing is in flight, then tell the thread to exit. */
    while (w->in_flight > 0) {
        pthread_mutex_lock(&w->mutex);
        while (!w->done_head)
            pthread_cond_wait(&w->cond, &w->mutex);
        pthread_mutex_unlock(&w->mutex);
        run_done(w);
    }
    pthread_mutex_lock(&w->mutex);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mutex);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mutex);
    pthread_cond_destroy(&w->cond);
    uv_close((uv_handle_t *)&w->async, on_async_closed);
    w->started = false;
}
