/* The peer transport over real loopback sockets: messages arrive whole and in order, the
 * handshake refuses another cluster and removed members, an unreachable peer or a full queue
 * drops messages instead of growing, and a restarted peer is dialed again. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/err.h"
#include "server/peers.h"

Suite *test_server_peers_suite(void);

enum { MSGS = 5000 };

struct side {
    struct srv_peers *p;
    uint64_t id;
    uint64_t got;       /* messages received */
    uint64_t from_last; /* sender of the last one */
    uint64_t bad_order; /* messages out of order or damaged */
    uint64_t rejected;
    enum srv_peer_reject reason;
};

static uv_loop_t loop;

static void on_recv(void *data, uint64_t from, const uint8_t *msg, size_t len)
{
    struct side *s = data;
    /* Message i is i as 8 bytes followed by (i % 300) bytes of (uint8_t)i. */
    uint64_t i = 0;
    if (len < 8) {
        s->bad_order++;
        return;
    }
    memcpy(&i, msg, 8);
    bool ok = i == s->got && len == 8 + i % 300;
    for (size_t k = 8; ok && k < len; k++)
        ok = msg[k] == (uint8_t)i;
    if (!ok) s->bad_order++;
    s->got++;
    s->from_last = from;
}

static void on_rejected(void *data, uint64_t peer, enum srv_peer_reject reason, const char *text)
{
    (void)peer;
    (void)text;
    struct side *s = data;
    s->rejected++;
    s->reason = reason;
}

static void make(struct side *s, uint64_t id, uint64_t cluster, size_t queue_max)
{
    memset(s, 0, sizeof(*s));
    s->id = id;
    struct srv_peers_config c = {
        .self_id = id,
        .cluster_id = cluster,
        .queue_bytes_max = queue_max,
        .backoff_min_ms = 10,
        .backoff_max_ms = 50,
        .recv_cb = on_recv,
        .rejected_cb = on_rejected,
        .data = s,
    };
    ck_assert_int_eq(srv_peers_new(&loop, &c, &s->p), 0);
    ck_assert_int_eq(srv_peers_listen(s->p, "127.0.0.1", 0), 0);
    ck_assert_uint_gt(srv_peers_port(s->p), 0);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *flag or about 5 s passed (bounded: no test can hang). */
static bool run_until(bool (*cond)(void *), void *arg)
{
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    bool ok = false;
    uint64_t start = uv_now(&loop);
    while (!(ok = cond(arg)) && uv_now(&loop) - start < 5000)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
}

static bool connected_to(void *arg)
{
    struct side **pair = arg;
    struct srv_peer_stats st;
    return srv_peers_stats(pair[0]->p, pair[1]->id, &st) && st.connected;
}

static uint64_t want_got;
static bool got_enough(void *arg)
{
    return ((struct side *)arg)->got >= want_got;
}

static bool was_rejected(void *arg)
{
    return ((struct side *)arg)->rejected > 0;
}

static int send_msg(struct side *from, uint64_t to, uint64_t i)
{
    uint8_t buf[8 + 300];
    memcpy(buf, &i, 8);
    memset(buf + 8, (uint8_t)i, i % 300);
    return srv_peers_send(from->p, to, buf, 8 + i % 300);
}

static void closed(void *data)
{
    (*(int *)data)++;
}

static void close_all(struct side **sides, size_t n)
{
    int done = 0;
    for (size_t i = 0; i < n; i++)
        srv_peers_close(sides[i]->p, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(done, (int)n);
}

static void setup(void)
{
    uv_loop_init(&loop);
}

static void teardown(void)
{
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

START_TEST(test_peers_deliver_every_message_in_order_both_ways)
{
    struct side a;
    struct side b;
    make(&a, 1, 7, 0);
    make(&b, 2, 7, 0);
    ck_assert_int_eq(srv_peers_add(a.p, 2, "127.0.0.1", srv_peers_port(b.p)), 0);
    ck_assert_int_eq(srv_peers_add(b.p, 1, "127.0.0.1", srv_peers_port(a.p)), 0);
    struct side *ab[] = { &a, &b };
    struct side *ba[] = { &b, &a };
    ck_assert(run_until(connected_to, ab));
    ck_assert(run_until(connected_to, ba));
    for (uint64_t i = 0; i < MSGS; i++) {
        ck_assert_int_eq(send_msg(&a, 2, i), 0);
        ck_assert_int_eq(send_msg(&b, 1, i), 0);
    }
    want_got = MSGS;
    ck_assert(run_until(got_enough, &b));
    ck_assert(run_until(got_enough, &a));
    ck_assert_uint_eq(b.bad_order, 0);
    ck_assert_uint_eq(a.bad_order, 0);
    ck_assert_uint_eq(b.from_last, 1);
    ck_assert_uint_eq(a.from_last, 2);
    struct srv_peer_stats st;
    ck_assert(srv_peers_stats(a.p, 2, &st));
    ck_assert_uint_eq(st.sent_messages, MSGS);
    ck_assert_uint_eq(st.dropped_messages, 0);
    close_all(ab, 2);
}
END_TEST

START_TEST(test_peers_refuse_a_member_of_another_cluster)
{
    struct side a;
    struct side c;
    make(&a, 1, 7, 0);
    make(&c, 3, 99, 0);
    ck_assert_int_eq(srv_peers_add(c.p, 1, "127.0.0.1", srv_peers_port(a.p)), 0);
    ck_assert(run_until(was_rejected, &c));
    ck_assert_int_eq(c.reason, SRV_PEER_REJECT_CLUSTER);
    ck_assert_uint_eq(a.got, 0);
    struct side *all[] = { &a, &c };
    close_all(all, 2);
}
END_TEST

START_TEST(test_peers_refuse_a_removed_member)
{
    struct side a;
    struct side b;
    make(&a, 1, 7, 0);
    make(&b, 2, 7, 0);
    srv_peers_remove(b.p, 1);
    ck_assert_int_eq(srv_peers_add(a.p, 2, "127.0.0.1", srv_peers_port(b.p)), 0);
    ck_assert(run_until(was_rejected, &a));
    ck_assert_int_eq(a.reason, SRV_PEER_REJECT_REMOVED);
    ck_assert_uint_eq(b.got, 0);
    struct side *all[] = { &a, &b };
    close_all(all, 2);
}
END_TEST

START_TEST(test_peers_drop_messages_to_an_unreachable_peer_and_beyond_the_queue)
{
    struct side a;
    struct side b;
    make(&a, 1, 7, 4096);
    make(&b, 2, 7, 0);
    /* Nobody listens on b's port plus one (almost surely): unreachable. */
    ck_assert_int_eq(srv_peers_add(a.p, 9, "127.0.0.1", 1), 0);
    ck_assert_int_eq(send_msg(&a, 9, 0), K_EUNAVAILABLE);
    ck_assert_int_eq(send_msg(&a, 42, 0), K_ENOTFOUND);
    ck_assert_int_eq(srv_peers_add(a.p, 2, "127.0.0.1", srv_peers_port(b.p)), 0);
    struct side *ab[] = { &a, &b };
    ck_assert(run_until(connected_to, ab));
    /* One loop turn: the first frames go to the socket, the rest wait in a 4 KiB queue. */
    uint64_t sent = 0;
    uint64_t refused = 0;
    for (uint64_t i = 0; i < 200; i++) {
        int rc = send_msg(&a, 2, sent);
        if (rc == 0) {
            sent++;
        } else {
            ck_assert_int_eq(rc, K_ELIMIT);
            refused++;
        }
    }
    ck_assert_uint_gt(refused, 0);
    struct srv_peer_stats st;
    ck_assert(srv_peers_stats(a.p, 2, &st));
    ck_assert_uint_eq(st.dropped_messages, refused);
    want_got = sent;
    ck_assert(run_until(got_enough, &b));
    ck_assert_uint_eq(b.bad_order, 0);
    struct side *all[] = { &a, &b };
    close_all(all, 2);
}
END_TEST

START_TEST(test_peers_dial_again_after_the_peer_restarts)
{
    struct side a;
    struct side b;
    make(&a, 1, 7, 0);
    make(&b, 2, 7, 0);
    uint16_t port = srv_peers_port(b.p);
    ck_assert_int_eq(srv_peers_add(a.p, 2, "127.0.0.1", port), 0);
    struct side *ab[] = { &a, &b };
    ck_assert(run_until(connected_to, ab));
    int done = 0;
    srv_peers_close(b.p, closed, &done);
    for (int i = 0; i < 100 && done == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(done, 1);
    /* b comes back on the same port; a dials again and delivers. */
    struct side b2;
    memset(&b2, 0, sizeof(b2));
    b2.id = 2;
    struct srv_peers_config c = {
        .self_id = 2, .cluster_id = 7, .backoff_min_ms = 10, .recv_cb = on_recv, .data = &b2
    };
    ck_assert_int_eq(srv_peers_new(&loop, &c, &b2.p), 0);
    ck_assert_int_eq(srv_peers_listen(b2.p, "127.0.0.1", port), 0);
    struct side *ab2[] = { &a, &b2 };
    ck_assert(run_until(connected_to, ab2));
    ck_assert_int_eq(send_msg(&a, 2, 0), 0);
    want_got = 1;
    ck_assert(run_until(got_enough, &b2));
    struct srv_peer_stats st;
    ck_assert(srv_peers_stats(a.p, 2, &st));
    ck_assert_uint_ge(st.connects, 2);
    struct side *all[] = { &a, &b2 };
    close_all(all, 2);
}
END_TEST

Suite *test_server_peers_suite(void)
{
    Suite *s = suite_create("server_peers");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_peers_deliver_every_message_in_order_both_ways);
    tcase_add_test(tc, test_peers_refuse_a_member_of_another_cluster);
    tcase_add_test(tc, test_peers_refuse_a_removed_member);
    tcase_add_test(tc, test_peers_drop_messages_to_an_unreachable_peer_and_beyond_the_queue);
    tcase_add_test(tc, test_peers_dial_again_after_the_peer_restarts);
    suite_add_tcase(s, tc);
    return s;
}
