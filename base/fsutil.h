/* Durable file-system steps every on-disk module needs: a new file's name is durable only
 * once its directory is fsynced, and a rename is the atomic replace. */
#ifndef KETCH_BASE_FSUTIL_H
#define KETCH_BASE_FSUTIL_H

#include <sys/types.h>

#include "base/assert.h"

/* Creates path and its missing parents with mode (like mkdir -p). 0 or a negative errno. */
K_MUST_USE int k_mkdir_p(const char *path, mode_t mode);

/* fsyncs the directory at path, making the names in it durable. 0 or a negative errno. */
K_MUST_USE int k_fsync_dir(const char *path);

/* Renames tmp over dst and fsyncs dst's directory. 0 or a negative errno. */
K_MUST_USE int k_rename_durably(const char *tmp, const char *dst);

/* Removes path and everything below it; a missing path is success. 0 or a negative errno. */
K_MUST_USE int k_remove_tree(const char *path);

#endif
