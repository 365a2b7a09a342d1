/* Internals shared by listener.c, conn.c and respond.c (srv__ names); not for callers, who
 * use http_server.h. Ownership: the server owns its connections until their handles close;
 * a connection lives until its handles are closed AND every request that references it is
 * finished (refs); a request lives until it is finished and its bytes are handed to libuv
 * (or its connection is gone). */
#ifndef KETCH_SERVER_SERVER_INT_H
#define KETCH_SERVER_SERVER_INT_H

#include "server/http_server.h"

/* Output bytes waiting for their turn, owned by the request, then by a write. */
struct srv__out {
    struct srv__out *next;
    size_t len;
    char *ext;   /* if not NULL: the bytes, malloc'd and owned (srv_respond_take) */
    char data[]; /* else: the bytes, inline */
};

enum srv__req_state {
    SRV__REQ_HANDLER,   /* at the handler, nothing sent yet */
    SRV__REQ_STREAMING, /* stream begun, not ended */
    SRV__REQ_FINISHED,  /* the handler is done with it */
};

struct srv_request {
    struct srv_conn *conn;        /* counted in conn->refs while req lives */
    struct srv_request *next;     /* in conn's queue, oldest first */
    struct srv_http_request *msg; /* NULL for the server's own error answers */
    enum srv__req_state state;
    bool queued;                /* still in conn's queue */
    bool gone;                  /* the client can no longer get the response */
    bool close_after;           /* close the connection after this response */
    bool raw_stream;            /* HTTP/1.0 stream: no chunk framing */
    struct srv__out *out_first; /* bytes not yet handed to libuv (waiting for turn) */
    struct srv__out *out_last;
    size_t out_bytes;
    srv_request_gone_cb gone_cb;
    void *gone_data;
};

struct srv_conn {
    uv_tcp_t tcp;                   /* tcp.data == this */
    uv_timer_t timer;               /* timeouts; timer.data == this */
    struct srv_http_server *server; /* NULL once the connection is closed */
    struct srv_conn *prev, *next;   /* in server's list while open */
    struct srv_http_parser parser;
    char *input; /* unparsed bytes, SRV_CONN_INPUT_BYTES, lazily */
    size_t input_len;
    struct srv_request *q_first; /* requests in order; only q_first may write */
    struct srv_request *q_last;
    size_t q_len;
    size_t write_bytes;        /* handed to uv_write, not yet completed */
    uint64_t requests_seen;    /* requests handed to the handler so far */
    size_t refs;               /* 1 for the handles until both closed + live requests */
    int handles_open;          /* tcp and timer, until their close callbacks */
    uint64_t last_progress_ms; /* last byte in (or out) that moved a deadline */
    uint64_t head_start_ms;    /* first byte of the current request */
    bool reading;              /* uv_read_start is active */
    bool parse_dead;           /* parser failed or stopped: no more requests */
    bool read_eof;             /* the client sent FIN */
    bool closing;              /* handles closing or closed */
    bool shutting_down;        /* FIN requested after the last answer; input is dropped */
    bool shutdown_done;        /* ... and sent: lingering for the client's FIN */
    bool pumping;              /* srv__conn_pump is on the stack */
    bool pump_again;
    bool continue_sent;  /* "100 Continue" went out for the request being read */
    struct srv_tls *tls; /* HTTPS: the connection's TLS state, freed with the handles; else NULL */
    uint64_t start_ms;   /* accepted at; the TLS handshake must end by start + head timeout */
};

struct srv_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct srv_http_config config;
    struct srv_conn *conns; /* open connections */
    size_t conn_count;
    bool listening;
    bool closing;
    size_t handles_open; /* listener + connections not yet fully closed */
    srv_http_server_closed_cb closed_cb;
    void *closed_data;
    char *tls_read_buf; /* HTTPS: ciphertext lands here, SRV_CONN_INPUT_BYTES, and is fed to
                           the connection's engine in the same read callback */
    time_t date_time;   /* second date_line was formatted for */
    char date_line[SRV_DATE_LINE_BYTES];
};

/* listener.c */
const char *srv__server_date_line(struct srv_http_server *s);
/* The connection started closing: off the list of open connections. */
void srv__server_conn_detach(struct srv_http_server *s, struct srv_conn *c);
/* Both handles of a detached connection are closed. */
void srv__server_conn_closed(struct srv_http_server *s);

/* conn.c */
void srv__conn_start(struct srv_http_server *s, struct srv_conn *c);
void srv__conn_pump(struct srv_conn *c);
void srv__conn_abort(struct srv_conn *c);
void srv__conn_unref(struct srv_conn *c);

/* respond.c */
struct srv_request *srv__request_new(struct srv_conn *c, struct srv_http_request *msg);
void srv__request_free(struct srv_request *req);
void srv__request_mark_gone(struct srv_request *req);
void srv__out_free(struct srv__out *o);
K_MUST_USE int srv__out_append(struct srv_request *req, const char *a, size_t alen, const char *b,
                               size_t blen, const char *c, size_t clen);

#endif
