/* The peer transport over real loopback sockets: messages arrive whole and in order, the
 * handshake refuses another cluster and removed members, an unreachable peer or a full queue
 * drops messages instead of growing, and a restarted peer is dialed again. Snapshots stream
 * between messages and arrive byte for byte, or leave nothing behind when the connection
 * dies; a joining member's question is answered with the cluster id and member list. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "base/buf.h"
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
    /* snapshots received (snapshot_cb) */
    uint64_t snaps;
    uint64_t snap_bad;    /* arrived with other bytes, length or message than were sent */
    uint64_t got_at_snap; /* messages received when the last snapshot arrived */
    uint64_t snap_from;   /* sender of the last one */
    uint64_t snap_expect; /* bytes the next snapshot must hold (the test pattern) */
    const char *snap_msg; /* the MsgSnap it must carry */
    /* snapshots sent (snapshot_sent_cb) */
    uint64_t sent_ok;
    uint64_t sent_fail;
    char dir[64]; /* incoming_dir, "" for none */
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

/* Connections that never say HELLO past the limit are closed at once; a member still gets in. */
enum { FLOOD = SRV_PEER_ACCEPTED_MAX + 4 };
static int flood_fds[FLOOD];

static bool flood_tail_closed(void *arg)
{
    (void)arg;
    int closed = 0;
    for (int i = 0; i < FLOOD; i++) {
        char b;
        ssize_t n = recv(flood_fds[i], &b, 1, MSG_DONTWAIT);
        if (n == 0) closed++;
    }
    return closed >= FLOOD - SRV_PEER_ACCEPTED_MAX;
}

/* The member's dial may still be refused while the transport has not yet seen every flood
 * connection close; it dials again (backoff), so keep sending until one message arrives. */
static struct side *late_sender;
static struct side *late_receiver;
static bool late_message_arrives(void *arg)
{
    (void)arg;
    if (late_receiver->got == 0) (void)send_msg(late_sender, late_receiver->id, 0);
    return late_receiver->got >= 1;
}

START_TEST(test_peers_close_accepted_connections_past_the_limit)
{
    signal(SIGPIPE, SIG_IGN); /* as ketchd: a write to a refused dial must not kill us */
    struct side a;
    struct side b;
    make(&a, 1, 7, 0);
    make(&b, 2, 7, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(srv_peers_port(a.p)) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < FLOOD; i++) {
        /* Non-blocking: past the listen backlog a blocking connect would wait for the loop. */
        flood_fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(flood_fds[i], 0);
        int rc = connect(flood_fds[i], (struct sockaddr *)&addr, sizeof(addr));
        ck_assert(rc == 0 || errno == EINPROGRESS);
        if (i % 32 == 31) uv_run(&loop, UV_RUN_NOWAIT); /* let the listener accept */
    }
    ck_assert(run_until(flood_tail_closed, NULL));
    for (int i = 0; i < FLOOD; i++)
        close(flood_fds[i]);
    /* The flood gone, a member dials and is heard. */
    ck_assert_int_eq(srv_peers_add(b.p, 1, "127.0.0.1", srv_peers_port(a.p)), 0);
    late_sender = &b;
    late_receiver = &a;
    ck_assert(run_until(late_message_arrives, NULL));
    ck_assert_uint_eq(a.bad_order, 0);
    struct side *all[] = { &a, &b };
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

/* ---- snapshots ---- */

/* Byte k of every test snapshot: not periodic in 256 or in the chunk size, so a lost, repeated
 * or reordered chunk shows. */
static uint8_t pattern_byte(uint64_t k)
{
    return (uint8_t)(k * 131 + (k >> 11) * 7 + (k >> 19));
}

static void write_pattern_file(const char *path, uint64_t bytes)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    uint8_t buf[65536];
    for (uint64_t off = 0; off < bytes;) {
        size_t n = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern_byte(off + i);
        ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
        off += n;
    }
    ck_assert_int_eq(close(fd), 0);
}

/* Whether the file at path holds exactly bytes bytes of the pattern. */
static bool file_is_pattern(const char *path, uint64_t bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    uint8_t buf[65536];
    uint64_t off = 0;
    bool ok = true;
    ssize_t n;
    while (ok && (n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; ok && i < n; i++)
            ok = off + (uint64_t)i < bytes && buf[i] == pattern_byte(off + (uint64_t)i);
        off += (uint64_t)n;
    }
    close(fd);
    return ok && off == bytes;
}

static void on_snapshot(void *data, uint64_t from, const uint8_t *msg, size_t len, const char *path)
{
    struct side *s = data;
    bool ok = s->snap_msg && len == strlen(s->snap_msg) && memcmp(msg, s->snap_msg, len) == 0 &&
              file_is_pattern(path, s->snap_expect);
    /* Handed over complete: fsynced and out of the way of the next one. */
    ok = ok && strncmp(path, s->dir, strlen(s->dir)) == 0;
    if (!ok) s->snap_bad++;
    s->snaps++;
    s->got_at_snap = s->got;
    s->snap_from = from;
    ck_assert_int_eq(unlink(path), 0); /* the callee owns the file */
}

static void on_snapshot_sent(void *data, uint64_t to, bool ok)
{
    (void)to;
    struct side *s = data;
    if (ok) {
        s->sent_ok++;
    } else {
        s->sent_fail++;
    }
}

static const char MEMBERS_JSON[] =
        "{\"members\":[{\"id\":\"1\",\"name\":\"a\",\"peerURLs\":[\"http://127.0.0.1:2380\"],"
        "\"clientURLs\":[]}]}";

static void on_members(void *data, struct k_buf *out)
{
    (void)data;
    k_buf_puts(out, MEMBERS_JSON);
}

enum { WITH_SNAPSHOTS = 1, WITH_MEMBERS = 2 };

/* Like make(), with snapshot_cb and a fresh incoming dir (WITH_SNAPSHOTS) and members_cb
 * (WITH_MEMBERS); snapshot_sent_cb always. port 0: the kernel picks. */
static void make_full(struct side *s, uint64_t id, uint64_t cluster, unsigned with, uint16_t port)
{
    memset(s, 0, sizeof(*s));
    s->id = id;
    if (with & WITH_SNAPSHOTS) {
        snprintf(s->dir, sizeof(s->dir), "/tmp/ketch-peers-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(s->dir));
    }
    struct srv_peers_config c = {
        .self_id = id,
        .cluster_id = cluster,
        .backoff_min_ms = 10,
        .backoff_max_ms = 50,
        .recv_cb = on_recv,
        .rejected_cb = on_rejected,
        .snapshot_cb = (with & WITH_SNAPSHOTS) ? on_snapshot : NULL,
        .snapshot_sent_cb = on_snapshot_sent,
        .incoming_dir = s->dir[0] ? s->dir : NULL,
        .members_cb = (with & WITH_MEMBERS) ? on_members : NULL,
        .data = s,
    };
    ck_assert_int_eq(srv_peers_new(&loop, &c, &s->p), 0);
    ck_assert_int_eq(srv_peers_listen(s->p, "127.0.0.1", port), 0);
    ck_assert_uint_gt(srv_peers_port(s->p), 0);
}

/* Files in dir (0 if it is gone). */
static size_t dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    }
    closedir(d);
    return n;
}

static bool dir_has_files(void *arg)
{
    return dir_files(arg) > 0;
}

static bool dir_empty(void *arg)
{
    return dir_files(arg) == 0;
}

static void rm_dir(const char *dir)
{
    if (dir[0]) ck_assert_int_eq(rmdir(dir), 0);
}

static uint64_t want_snaps;
static bool snaps_and_msgs(void *arg)
{
    struct side *s = arg;
    return s->snaps >= want_snaps && s->got >= want_got;
}

static uint64_t want_sent;
static bool sent_done(void *arg)
{
    struct side *s = arg;
    return s->sent_ok + s->sent_fail >= want_sent;
}

/* A temporary snapshot file of bytes bytes of the pattern; path is its name (>= 64). */
static void make_snapshot_file(char *path, size_t cap, uint64_t bytes)
{
    snprintf(path, cap, "/tmp/ketch-snap-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    write_pattern_file(path, bytes);
}

static const char SNAP_MSG[] = "MsgSnap for index 42";

static void connect_pair(struct side *a, struct side *b)
{
    ck_assert_int_eq(srv_peers_add(a->p, b->id, "127.0.0.1", srv_peers_port(b->p)), 0);
    struct side *ab[] = { a, b };
    ck_assert(run_until(connected_to, ab));
}

START_TEST(test_peers_stream_a_snapshot_between_messages)
{
    enum { BEFORE = 2000, DURING = 2000, AFTER = 500 };
    const uint64_t bytes = (4u << 20) + 12345; /* a few MiB, not a whole number of chunks */
    char file[64];
    make_snapshot_file(file, sizeof(file), bytes);
    struct side a;
    struct side b;
    make_full(&a, 1, 7, 0, 0);
    make_full(&b, 2, 7, WITH_SNAPSHOTS, 0);
    b.snap_expect = bytes;
    b.snap_msg = SNAP_MSG;
    connect_pair(&a, &b);
    uint64_t i = 0;
    for (; i < BEFORE; i++)
        ck_assert_int_eq(send_msg(&a, 2, i), 0);
    ck_assert_int_eq(
            srv_peers_send_snapshot(a.p, 2, (const uint8_t *)SNAP_MSG, strlen(SNAP_MSG), file), 0);
    /* One snapshot per peer at a time. */
    ck_assert_int_eq(
            srv_peers_send_snapshot(a.p, 2, (const uint8_t *)SNAP_MSG, strlen(SNAP_MSG), file),
            K_EBUSY);
    /* Messages sent while the snapshot streams do not wait behind it. */
    for (; i < BEFORE + DURING; i++)
        ck_assert_int_eq(send_msg(&a, 2, i), 0);
    want_snaps = 1;
    want_got = BEFORE + DURING;
    ck_assert(run_until(snaps_and_msgs, &b));
    want_sent = 1;
    ck_assert(run_until(sent_done, &a));
    ck_assert_uint_eq(a.sent_ok, 1);
    ck_assert_uint_eq(a.sent_fail, 0);
    ck_assert_uint_eq(b.snaps, 1);
    ck_assert_uint_eq(b.snap_bad, 0);
    ck_assert_uint_eq(b.snap_from, 1);
    ck_assert_uint_eq(b.got_at_snap, BEFORE + DURING);
    /* Messages go on after it, and a second snapshot may follow the first. */
    for (; i < BEFORE + DURING + AFTER; i++)
        ck_assert_int_eq(send_msg(&a, 2, i), 0);
    ck_assert_int_eq(
            srv_peers_send_snapshot(a.p, 2, (const uint8_t *)SNAP_MSG, strlen(SNAP_MSG), file), 0);
    want_snaps = 2;
    want_got = BEFORE + DURING + AFTER;
    ck_assert(run_until(snaps_and_msgs, &b));
    want_sent = 2;
    ck_assert(run_until(sent_done, &a));
    ck_assert_uint_eq(a.sent_ok, 2);
    ck_assert_uint_eq(b.snap_bad, 0);
    ck_assert_uint_eq(b.bad_order, 0);
    ck_assert_uint_eq(b.got, BEFORE + DURING + AFTER);
    ck_assert_uint_eq(dir_files(b.dir), 0);
    struct srv_peer_stats st;
    ck_assert(srv_peers_stats(a.p, 2, &st));
    ck_assert_uint_eq(st.dropped_messages, 0);
    ck_assert_uint_eq(st.connects, 1);
    struct side *all[] = { &a, &b };
    close_all(all, 2);
    rm_dir(b.dir);
    ck_assert_int_eq(unlink(file), 0);
}
END_TEST

START_TEST(test_peers_send_snapshot_refuses_what_it_cannot_start)
{
    char file[64];
    make_snapshot_file(file, sizeof(file), 1000);
    struct side a;
    struct side b;
    make_full(&a, 1, 7, 0, 0);
    make_full(&b, 2, 7, WITH_SNAPSHOTS, 0);
    const uint8_t *m = (const uint8_t *)SNAP_MSG;
    ck_assert_int_eq(srv_peers_send_snapshot(a.p, 2, m, strlen(SNAP_MSG), file), K_ENOTFOUND);
    /* Nobody listens on port 1: added, never connected. */
    ck_assert_int_eq(srv_peers_add(a.p, 9, "127.0.0.1", 1), 0);
    ck_assert_int_eq(srv_peers_send_snapshot(a.p, 9, m, strlen(SNAP_MSG), file), K_EUNAVAILABLE);
    connect_pair(&a, &b);
    ck_assert_int_eq(srv_peers_send_snapshot(a.p, 2, m, strlen(SNAP_MSG), "/nonexistent/snap"),
                     -ENOENT);
    /* None of those started a snapshot: the next one goes out whole. */
    b.snap_expect = 1000;
    b.snap_msg = SNAP_MSG;
    ck_assert_int_eq(srv_peers_send_snapshot(a.p, 2, m, strlen(SNAP_MSG), file), 0);
    want_snaps = 1;
    want_got = 0;
    ck_assert(run_until(snaps_and_msgs, &b));
    want_sent = 1;
    ck_assert(run_until(sent_done, &a));
    ck_assert_uint_eq(a.sent_ok, 1);
    ck_assert_uint_eq(a.sent_fail, 0);
    ck_assert_uint_eq(b.snap_bad, 0);
    struct side *all[] = { &a, &b };
    close_all(all, 2);
    rm_dir(b.dir);
    ck_assert_int_eq(unlink(file), 0);
}
END_TEST

/* Runs the loop until b has begun writing a snapshot of 32 MiB from a, and checks it is not
 * done: the connection can then be cut mid-stream. */
static void start_big_snapshot(struct side *a, struct side *b, char *file, size_t cap)
{
    const uint64_t bytes = 32u << 20;
    make_snapshot_file(file, cap, bytes);
    b->snap_expect = bytes;
    b->snap_msg = SNAP_MSG;
    connect_pair(a, b);
    ck_assert_int_eq(send_msg(a, 2, 0), 0);
    ck_assert_int_eq(
            srv_peers_send_snapshot(a->p, 2, (const uint8_t *)SNAP_MSG, strlen(SNAP_MSG), file), 0);
    ck_assert(run_until(dir_has_files, b->dir));
    ck_assert_uint_eq(b->snaps, 0);
    ck_assert_uint_eq(a->sent_ok + a->sent_fail, 0);
}

START_TEST(test_peers_snapshot_to_a_removed_peer_fails_and_leaves_nothing)
{
    char file[64];
    struct side a;
    struct side b;
    make_full(&a, 1, 7, 0, 0);
    make_full(&b, 2, 7, WITH_SNAPSHOTS, 0);
    start_big_snapshot(&a, &b, file, sizeof(file));
    /* The sender forgets the peer while chunks are in the socket and the queue. */
    srv_peers_remove(a.p, 2);
    want_sent = 1;
    ck_assert(run_until(sent_done, &a));
    ck_assert_uint_eq(a.sent_ok, 0);
    ck_assert_uint_eq(a.sent_fail, 1);
    /* The receiver sees the connection end and drops the piece it had. */
    ck_assert(run_until(dir_empty, b.dir));
    ck_assert_uint_eq(b.snaps, 0);
    ck_assert_uint_eq(b.got, 1);
    struct side *all[] = { &a, &b };
    close_all(all, 2);
    ck_assert_uint_eq(a.sent_fail, 1);
    rm_dir(b.dir);
    ck_assert_int_eq(unlink(file), 0);
}
END_TEST

START_TEST(test_peers_snapshot_to_a_receiver_that_restarts_fails_then_succeeds)
{
    char file[64];
    struct side a;
    struct side b;
    make_full(&a, 1, 7, 0, 0);
    make_full(&b, 2, 7, WITH_SNAPSHOTS, 0);
    start_big_snapshot(&a, &b, file, sizeof(file));
    uint16_t port = srv_peers_port(b.p);
    char bdir[64];
    snprintf(bdir, sizeof(bdir), "%s", b.dir);
    int done = 0;
    srv_peers_close(b.p, closed, &done);
    for (int i = 0; i < 100 && done == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(done, 1);
    /* The receiver closed with a piece written: nothing of it stays. */
    ck_assert_uint_eq(dir_files(bdir), 0);
    ck_assert_uint_eq(b.snaps, 0);
    want_sent = 1;
    ck_assert(run_until(sent_done, &a));
    ck_assert_uint_eq(a.sent_ok, 0);
    ck_assert_uint_eq(a.sent_fail, 1);
    /* The receiver comes back on the same port; the sender dials again, and the snapshot
     * (raft sends it again) now goes out whole. */
    struct side b2;
    make_full(&b2, 2, 7, WITH_SNAPSHOTS, port);
    b2.snap_expect = 32u << 20;
    b2.snap_msg = SNAP_MSG;
    struct side *ab2[] = { &a, &b2 };
    ck_assert(run_until(connected_to, ab2));
    ck_assert_int_eq(
            srv_peers_send_snapshot(a.p, 2, (const uint8_t *)SNAP_MSG, strlen(SNAP_MSG), file), 0);
    ck_assert_int_eq(send_msg(&a, 2, 0), 0);
    want_snaps = 1;
    want_got = 1;
    ck_assert(run_until(snaps_and_msgs, &b2));
    want_sent = 2;
    ck_assert(run_until(sent_done, &a));
    ck_assert_uint_eq(a.sent_ok, 1);
    ck_assert_uint_eq(b2.snap_bad, 0);
    ck_assert_uint_eq(b2.bad_order, 0);
    struct side *all[] = { &a, &b2 };
    close_all(all, 2);
    rm_dir(bdir);
    rm_dir(b2.dir);
    ck_assert_int_eq(unlink(file), 0);
}
END_TEST

START_TEST(test_peers_snapshot_to_a_peer_that_refuses_snapshots_is_dropped)
{
    char file[64];
    make_snapshot_file(file, sizeof(file), 1 << 20);
    struct side a;
    struct side b;
    make_full(&a, 1, 7, 0, 0);
    make_full(&b, 2, 7, 0, 0); /* no snapshot_cb, no incoming dir */
    connect_pair(&a, &b);
    for (uint64_t i = 0; i < 10; i++)
        ck_assert_int_eq(send_msg(&a, 2, i), 0);
    ck_assert_int_eq(
            srv_peers_send_snapshot(a.p, 2, (const uint8_t *)SNAP_MSG, strlen(SNAP_MSG), file), 0);
    want_sent = 1;
    ck_assert(run_until(sent_done, &a));
    ck_assert_uint_eq(a.sent_ok, 0);
    ck_assert_uint_eq(a.sent_fail, 1);
    /* What came before the snapshot was delivered; the sender dials again and goes on. */
    want_got = 10;
    ck_assert(run_until(got_enough, &b));
    struct side *ab[] = { &a, &b };
    ck_assert(run_until(connected_to, ab));
    ck_assert_int_eq(send_msg(&a, 2, 10), 0);
    want_got = 11;
    ck_assert(run_until(got_enough, &b));
    ck_assert_uint_eq(b.bad_order, 0);
    ck_assert_uint_eq(b.snaps, 0);
    struct srv_peer_stats st;
    ck_assert(srv_peers_stats(a.p, 2, &st));
    ck_assert_uint_ge(st.connects, 2);
    struct side *all[] = { &a, &b };
    close_all(all, 2);
    ck_assert_int_eq(unlink(file), 0);
}
END_TEST

START_TEST(test_peers_add_with_the_same_address_keeps_the_connection)
{
    struct side a;
    struct side b;
    make_full(&a, 1, 7, 0, 0);
    make_full(&b, 2, 7, 0, 0);
    connect_pair(&a, &b);
    /* Re-adding between sends (as every registry sync does) loses nothing queued. */
    for (uint64_t i = 0; i < MSGS; i++) {
        ck_assert_int_eq(send_msg(&a, 2, i), 0);
        if (i % 100 == 0)
            ck_assert_int_eq(srv_peers_add(a.p, 2, "127.0.0.1", srv_peers_port(b.p)), 0);
    }
    want_got = MSGS;
    ck_assert(run_until(got_enough, &b));
    ck_assert_uint_eq(b.bad_order, 0);
    struct srv_peer_stats st;
    ck_assert(srv_peers_stats(a.p, 2, &st));
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(st.dropped_messages, 0);
    ck_assert(st.connected);
    struct side *all[] = { &a, &b };
    close_all(all, 2);
}
END_TEST

START_TEST(test_peers_remove_or_close_while_dialing_and_writing)
{
    struct side a;
    struct side b;
    make_full(&a, 1, 7, 0, 0);
    make_full(&b, 2, 7, 0, 0);
    /* Removed in the same turn it was added: its connect is still pending. */
    ck_assert_int_eq(srv_peers_add(a.p, 2, "127.0.0.1", srv_peers_port(b.p)), 0);
    srv_peers_remove(a.p, 2);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    struct srv_peer_stats st;
    ck_assert(!srv_peers_stats(a.p, 2, &st));
    /* Added again (allowed after a removal), connected, then removed with writes queued. */
    connect_pair(&a, &b);
    for (uint64_t i = 0; i < 2000; i++)
        ck_assert_int_eq(send_msg(&a, 2, i), 0);
    srv_peers_remove(a.p, 2);
    ck_assert_int_eq(send_msg(&a, 2, 0), K_ENOTFOUND);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    /* Id 0 names nobody: removing it changes nothing (it used to abort in the map). */
    srv_peers_remove(a.p, 0);
    /* And a transport closed while a dial is pending. */
    ck_assert_int_eq(srv_peers_add(b.p, 1, "127.0.0.1", srv_peers_port(a.p)), 0);
    struct side *all[] = { &a, &b };
    close_all(all, 2);
}
END_TEST

/* ---- the joining member's question ---- */

struct query {
    uint16_t port;
    int rc;
    uint64_t cluster_id;
    char *json;
    size_t json_len;
    char err[256];
    atomic_bool done;
};

static void *query_thread(void *arg)
{
    struct query *q = arg;
    q->rc = srv_peers_query_members("127.0.0.1", q->port, 3000, &q->cluster_id, &q->json,
                                    &q->json_len, q->err, sizeof(q->err));
    atomic_store(&q->done, true);
    return NULL;
}

static bool query_done(void *arg)
{
    return atomic_load(&((struct query *)arg)->done);
}

/* Asks the transport listening on port, from another thread while this one runs the loop. */
static void query(struct query *q, uint16_t port)
{
    memset(q, 0, sizeof(*q));
    q->port = port;
    atomic_init(&q->done, false);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, query_thread, q), 0);
    bool done = run_until(query_done, q);
    ck_assert_int_eq(pthread_join(t, NULL), 0); /* bounded: the query has a 3 s deadline */
    ck_assert(done);
}

START_TEST(test_peers_answer_a_joining_member)
{
    struct side b;
    make_full(&b, 2, 0x5eed, WITH_MEMBERS, 0);
    struct query q;
    query(&q, srv_peers_port(b.p));
    ck_assert_int_eq(q.rc, 0);
    ck_assert_uint_eq(q.cluster_id, 0x5eed);
    ck_assert_uint_eq(q.json_len, strlen(MEMBERS_JSON));
    ck_assert_str_eq(q.json, MEMBERS_JSON);
    free(q.json);
    /* The same transport still serves members after answering. */
    struct side a;
    make_full(&a, 1, 0x5eed, 0, 0);
    connect_pair(&a, &b);
    ck_assert_int_eq(send_msg(&a, 2, 0), 0);
    want_got = 1;
    ck_assert(run_until(got_enough, &b));
    struct side *all[] = { &a, &b };
    close_all(all, 2);
}
END_TEST

START_TEST(test_peers_a_transport_without_members_cb_refuses_a_join)
{
    struct side b;
    make_full(&b, 2, 7, 0, 0);
    struct query q;
    query(&q, srv_peers_port(b.p));
    ck_assert_int_eq(q.rc, K_EPROTO);
    ck_assert_ptr_null(q.json);
    ck_assert_ptr_nonnull(strstr(q.err, "JOIN"));
    struct side *all[] = { &b };
    close_all(all, 1);
    /* Nobody listening there any more: the connection is refused, not a hang. */
    query(&q, 1);
    ck_assert_int_eq(q.rc, -ECONNREFUSED);
    ck_assert_ptr_null(q.json);
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
    tcase_add_test(tc, test_peers_stream_a_snapshot_between_messages);
    tcase_add_test(tc, test_peers_send_snapshot_refuses_what_it_cannot_start);
    tcase_add_test(tc, test_peers_snapshot_to_a_removed_peer_fails_and_leaves_nothing);
    tcase_add_test(tc, test_peers_snapshot_to_a_receiver_that_restarts_fails_then_succeeds);
    tcase_add_test(tc, test_peers_snapshot_to_a_peer_that_refuses_snapshots_is_dropped);
    tcase_add_test(tc, test_peers_add_with_the_same_address_keeps_the_connection);
    tcase_add_test(tc, test_peers_remove_or_close_while_dialing_and_writing);
    tcase_add_test(tc, test_peers_answer_a_joining_member);
    tcase_add_test(tc, test_peers_a_transport_without_members_cb_refuses_a_join);
    tcase_add_test(tc, test_peers_close_accepted_connections_past_the_limit);
    suite_add_tcase(s, tc);
    return s;
}
