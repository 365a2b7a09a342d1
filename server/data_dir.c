/* Data directory layout, identity file and lock; see server/data_dir.h. */
#include "data_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fsutil.h"
#include "server/member_id.h"

static const char IDENTITY_HEADER[] = "ketch-identity 1";

static int fail(char *err, size_t err_len, int rc, const char *fmt, const char *a, const char *b)
{
    snprintf(err, err_len, fmt, a, b);
    return rc;
}

static bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Returns whether dir holds at least one WAL segment (*.wal). */
static bool dir_has_wal_segment(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);
        found = len > 4 && strcmp(de->d_name + len - 4, ".wal") == 0;
    }
    closedir(dir);
    return found;
}

/* Parses "key=value" lines after the header line; unknown keys are corruption. */
static int identity_parse(char *text, struct srv_identity *id)
{
    memset(id, 0, sizeof(*id));
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    if (!line || strcmp(line, IDENTITY_HEADER) != 0) return K_ECORRUPT;
    bool have_name = false;
    bool have_member = false;
    bool have_cluster = false;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        char *eq = strchr(line, '=');
        if (!eq) return K_ECORRUPT;
        *eq = '\0';
        const char *value = eq + 1;
        if (strcmp(line, "name") == 0 && strlen(value) < sizeof(id->name)) {
            memcpy(id->name, value, strlen(value) + 1);
            have_name = true;
        } else if (strcmp(line, "member_id") == 0) {
            if (srv_id_parse(value, &id->member_id) < 0) return K_ECORRUPT;
            have_member = true;
        } else if (strcmp(line, "cluster_id") == 0) {
            if (srv_id_parse(value, &id->cluster_id) < 0) return K_ECORRUPT;
            have_cluster = true;
        } else {
            return K_ECORRUPT;
        }
    }
    return have_name && have_member && have_cluster ? 0 : K_ECORRUPT;
}

static int identity_read(const char *path, struct srv_identity *id)
{
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    char text[1024];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    int rc = ferror(f) ? -EIO : 0;
    fclose(f);
    if (rc < 0) return rc;
    if (n == sizeof(text) - 1) return K_ECORRUPT;
    text[n] = '\0';
    return identity_parse(text, id);
}

int srv_data_dir_open(struct srv_data_dir *d, const char *data_dir, const char *wal_dir,
                      const char *name, char *err, size_t err_len)
{
    memset(d, 0, sizeof(*d));
    d->lock_fd = -1;
    char etcd_member[4096];
    snprintf(etcd_member, sizeof(etcd_member), "%s/member", data_dir);
    if (path_exists(etcd_member)) {
        return fail(err, err_len, K_ECONFIG,
                    "data dir %s holds etcd's data (member/), which ketchd cannot read: point "
                    "--data-dir at another directory%s",
                    data_dir, "");
    }
    if (strlen(data_dir) + sizeof("/ketch") > sizeof(d->root)) {
        return fail(err, err_len, K_ECONFIG, "--data-dir %s is too long%s", data_dir, "");
    }
    snprintf(d->root, sizeof(d->root), "%s/ketch", data_dir);
    int rc = k_mkdir_p(d->root, 0700);
    if (rc < 0) {
        return fail(err, err_len, rc,
                    "cannot create data dir %s: %s (run as its owner or pass "
                    "--data-dir)",
                    d->root, k_strerror(rc));
    }
    char lock_path[4200];
    snprintf(lock_path, sizeof(lock_path), "%s/lock", d->root);
    d->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0) {
        rc = -errno;
        return fail(err, err_len, rc, "cannot open %s: %s", lock_path, k_strerror(rc));
    }
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? K_ECONFIG : -errno;
        srv_data_dir_close(d);
        return fail(err, err_len, rc,
                    "data dir %s is in use by another ketchd (it holds the lock on %s)", data_dir,
                    lock_path);
    }
    snprintf(d->wal_dir, sizeof(d->wal_dir), "%s", wal_dir ? wal_dir : "");
    if (!wal_dir || !wal_dir[0]) snprintf(d->wal_dir, sizeof(d->wal_dir), "%s/wal", d->root);
    snprintf(d->snap_dir, sizeof(d->snap_dir), "%s/snap", d->root);
    snprintf(d->kv_dir, sizeof(d->kv_dir), "%s/kv", d->root);
    char id_path[4200];
    snprintf(id_path, sizeof(id_path), "%s/identity", d->root);
    rc = identity_read(id_path, &d->identity);
    if (rc == -ENOENT) return 0;
    if (rc < 0) {
        srv_data_dir_close(d);
        return fail(err, err_len, rc == K_ECORRUPT ? K_ECORRUPT : rc,
                    "cannot read %s: %s (restore the data dir from a backup or start a new "
                    "member elsewhere)",
                    id_path, rc == K_ECORRUPT ? "the file is damaged" : k_strerror(rc));
    }
    d->has_identity = true;
    if (strcmp(d->identity.name, name) != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "data dir %s belongs to member \"%s\"", data_dir,
                 d->identity.name);
        srv_data_dir_close(d);
        return fail(err, err_len, K_ECONFIG,
                    "%s, not \"%s\": start with that --name or use "
                    "another --data-dir",
                    msg, name);
    }
    if (!dir_has_wal_segment(d->wal_dir)) {
        char msg[4400];
        snprintf(msg, sizeof(msg), "%s", d->wal_dir);
        srv_data_dir_close(d);
        return fail(err, err_len, K_ECORRUPT,
                    "data dir %s has a member identity but no WAL at %s: the WAL was removed or "
                    "--wal-dir changed",
                    data_dir, msg);
    }
    return 0;
}

int srv_data_dir_save_identity(struct srv_data_dir *d, const struct srv_identity *id)
{
    char tmp[4200];
    char dst[4200];
    snprintf(tmp, sizeof(tmp), "%s/identity.tmp", d->root);
    snprintf(dst, sizeof(dst), "%s/identity", d->root);
    char member[17];
    char cluster[17];
    srv_id_format(id->member_id, member);
    srv_id_format(id->cluster_id, cluster);
    char text[512];
    int n = snprintf(text, sizeof(text), "%s\nname=%s\nmember_id=%s\ncluster_id=%s\n",
                     IDENTITY_HEADER, id->name, member, cluster);
    k_assert(n > 0 && (size_t)n < sizeof(text));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    int rc = 0;
    if (write(fd, text, (size_t)n) != n) rc = errno ? -errno : -EIO;
    if (rc == 0 && fsync(fd) < 0) rc = -errno;
    close(fd);
    if (rc == 0) rc = k_rename_durably(tmp, dst);
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    d->identity = *id;
    d->has_identity = true;
    return 0;
}

void srv_data_dir_close(struct srv_data_dir *d)
{
    if (d->lock_fd >= 0) close(d->lock_fd); /* closing releases the flock */
    d->lock_fd = -1;
}
