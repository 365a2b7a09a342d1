/* Messages and HTTP statuses of etcd v2 error codes (spec/etcd-v2-api.md §6). */
#include "kv/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

const char *kv_ecode_message(enum kv_ecode ecode)
{
    switch (ecode) {
    case KV_ECODE_NONE:
        return "";
    case KV_ECODE_KEY_NOT_FOUND:
        return "Key not found";
    case KV_ECODE_TEST_FAILED:
        return "Compare failed";
    case KV_ECODE_NOT_FILE:
        return "Not a file";
    case KV_ECODE_NO_MORE_PEER:
        return "Reached the max number of peers in the cluster";
    case KV_ECODE_NOT_DIR:
        return "Not a directory";
    case KV_ECODE_NODE_EXIST:
        return "Key already exists";
    case KV_ECODE_KEY_IS_PRESERVED:
        return "The prefix of given key is a keyword in etcd";
    case KV_ECODE_ROOT_RONLY:
        return "Root is read only";
    case KV_ECODE_DIR_NOT_EMPTY:
        return "Directory not empty";
    case KV_ECODE_EXISTING_PEER_ADDR:
        return "Peer address has existed";
    case KV_ECODE_UNAUTHORIZED:
        return "The request requires user authentication";
    case KV_ECODE_VALUE_REQUIRED:
        return "Value is Required in POST form";
    case KV_ECODE_PREV_VALUE_REQUIRED:
        return "PrevValue is Required in POST form";
    case KV_ECODE_TTL_NAN:
        return "The given TTL in POST form is not a number";
    case KV_ECODE_INDEX_NAN:
        return "The given index in POST form is not a number";
    case KV_ECODE_VALUE_OR_TTL_REQUIRED:
        return "Value or TTL is required in POST form";
    case KV_ECODE_TIMEOUT_NAN:
        return "The given timeout in POST form is not a number";
    case KV_ECODE_NAME_REQUIRED:
        return "Name is required in POST form";
    case KV_ECODE_INDEX_OR_VALUE_REQUIRED:
        return "Index or value is required";
    case KV_ECODE_INDEX_VALUE_MUTEX:
        return "Index and value cannot both be specified";
    case KV_ECODE_INVALID_FIELD:
        return "Invalid field";
    case KV_ECODE_INVALID_FORM:
        return "Invalid POST form";
    case KV_ECODE_REFRESH_VALUE:
        return "Value provided on refresh";
    case KV_ECODE_REFRESH_TTL_REQUIRED:
        return "A TTL must be provided on refresh";
    case KV_ECODE_RAFT_INTERNAL:
        return "Raft Internal Error";
    case KV_ECODE_LEADER_ELECT:
        return "During Leader Election";
    case KV_ECODE_WATCHER_CLEARED:
        return "watcher is cleared due to etcd recovery";
    case KV_ECODE_EVENT_INDEX_CLEARED:
        return "The event in requested index is outdated and cleared";
    case KV_ECODE_STANDBY_INTERNAL:
        return "Standby Internal Error";
    case KV_ECODE_INVALID_ACTIVE_SIZE:
        return "Invalid active size";
    case KV_ECODE_INVALID_REMOVE_DELAY:
        return "Standby remove delay";
    case KV_ECODE_CLIENT_INTERNAL:
        return "Client Internal Error";
    }
    return "";
}

int kv_ecode_http_status(enum kv_ecode ecode)
{
    switch (ecode) {
    case KV_ECODE_KEY_NOT_FOUND:
        return 404;
    case KV_ECODE_TEST_FAILED:
    case KV_ECODE_NODE_EXIST:
        return 412;
    case KV_ECODE_NOT_FILE:
    case KV_ECODE_DIR_NOT_EMPTY:
        return 403;
    case KV_ECODE_UNAUTHORIZED:
        return 401;
    case KV_ECODE_RAFT_INTERNAL:
    case KV_ECODE_LEADER_ELECT:
        return 500;
    default:
        return 400;
    }
}

int kv_error_set(struct kv_error *err, enum kv_ecode ecode, uint64_t index, const char *fmt, ...)
{
    err->ecode = ecode;
    err->index = index;
    err->cause_long = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->cause, sizeof(err->cause), fmt, ap);
    va_end(ap);
    if (n < 0) err->cause[0] = '\0';
    err->cause_len = strlen(err->cause);
    return K_EV2;
}

int kv_error_set_path(struct kv_error *err, enum kv_ecode ecode, uint64_t index, const char *path,
                      size_t len)
{
    err->ecode = ecode;
    err->index = index;
    err->cause_long = NULL;
    char *dst = err->cause;
    if (len >= sizeof(err->cause)) dst = err->cause_long = k_xmalloc(len + 1);
    if (len > 0) memcpy(dst, path, len);
    dst[len] = '\0';
    err->cause_len = len;
    return K_EV2;
}

const char *kv_error_cause(const struct kv_error *err)
{
    return err->cause_long != NULL ? err->cause_long : err->cause;
}

void kv_error_release(struct kv_error *err)
{
    if (err->cause_long == NULL) return;
    free(err->cause_long);
    err->cause_long = NULL;
    err->cause[0] = '\0';
    err->cause_len = 0;
}
