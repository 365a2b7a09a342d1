/* An LD_PRELOAD shim that turns kill -9 into a power loss for ketchd's tests:
 *  - writes to WAL segments (files named *.wal) are held in memory until the process calls
 *    fdatasync or fsync on them, so a kill -9 drops exactly what was not yet synced, as a
 *    power loss drops what was only in the page cache;
 *  - /proc/sys/kernel/random/boot_id reads as the value of KETCH_SHIM_BOOT_ID, so a restart
 *    can pretend the machine rebooted (the store, run without fsync, must then be rebuilt).
 * Test code only: never linked into a ketch binary. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

enum { SHIM_FDS_MAX = 4096 };

struct pending_write {
    off_t offset;
    size_t len;
    struct pending_write *next;
    unsigned char data[];
};

struct tracked {
    int is_wal;
    struct pending_write *head;
    struct pending_write *tail;
};

static struct tracked fds[SHIM_FDS_MAX];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int (*real_open)(const char *, int, ...);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static int (*real_close)(int);
static FILE *(*real_fopen)(const char *, const char *);

static void init(void)
{
    if (real_open) return;
    real_open = dlsym(RTLD_NEXT, "open");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_fopen = dlsym(RTLD_NEXT, "fopen");
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s);
    size_t b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int open(const char *path, int flags, ...)
{
    init();
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    int fd = real_open(path, flags, mode);
    if (fd >= 0 && fd < SHIM_FDS_MAX) {
        pthread_mutex_lock(&lock);
        fds[fd].is_wal = ends_with(path, ".wal") && (flags & O_ACCMODE) != O_RDONLY;
        pthread_mutex_unlock(&lock);
    }
    return fd;
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset)
{
    init();
    if (fd < 0 || fd >= SHIM_FDS_MAX || !fds[fd].is_wal) return real_pwrite(fd, buf, n, offset);
    struct pending_write *w = malloc(sizeof(*w) + n);
    if (!w) {
        errno = ENOMEM;
        return -1;
    }
    w->offset = offset;
    w->len = n;
    w->next = NULL;
    memcpy(w->data, buf, n);
    pthread_mutex_lock(&lock);
    if (fds[fd].tail) {
        fds[fd].tail->next = w;
    } else {
        fds[fd].head = w;
    }
    fds[fd].tail = w;
    pthread_mutex_unlock(&lock);
    return (ssize_t)n;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) __attribute__((alias("pwrite")));

/* Writes what was held for fd to the file; the sync that follows makes it durable. */
static int flush_pending(int fd)
{
    if (fd < 0 || fd >= SHIM_FDS_MAX) return 0;
    pthread_mutex_lock(&lock);
    struct pending_write *w = fds[fd].head;
    fds[fd].head = fds[fd].tail = NULL;
    pthread_mutex_unlock(&lock);
    int rc = 0;
    while (w) {
        struct pending_write *next = w->next;
        if (rc == 0 && real_pwrite(fd, w->data, w->len, w->offset) != (ssize_t)w->len) rc = -1;
        free(w);
        w = next;
    }
    return rc;
}

int fdatasync(int fd)
{
    init();
    if (flush_pending(fd) < 0) return -1;
    return real_fdatasync(fd);
}

int fsync(int fd)
{
    init();
    if (flush_pending(fd) < 0) return -1;
    return real_fsync(fd);
}

int close(int fd)
{
    init();
    /* A close without a sync keeps the data in the page cache, where a power loss may
     * still take it: drop it, the harsher of the two outcomes. */
    if (fd >= 0 && fd < SHIM_FDS_MAX) {
        pthread_mutex_lock(&lock);
        struct pending_write *w = fds[fd].head;
        fds[fd].head = fds[fd].tail = NULL;
        fds[fd].is_wal = 0;
        pthread_mutex_unlock(&lock);
        while (w) {
            struct pending_write *next = w->next;
            free(w);
            w = next;
        }
    }
    return real_close(fd);
}

FILE *fopen(const char *path, const char *mode)
{
    init();
    const char *fake = getenv("KETCH_SHIM_BOOT_ID");
    if (fake && strcmp(path, "/proc/sys/kernel/random/boot_id") == 0) {
        return fmemopen((void *)fake, strlen(fake), "r");
    }
    return real_fopen(path, mode);
}

FILE *fopen64(const char *path, const char *mode) __attribute__((alias("fopen")));
