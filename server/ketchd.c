/* ketchd's entry point. Until the single-member server lands (issue 6) this build answers
 * --version and --help in etcd's format and says plainly that it cannot serve yet. */
#include <stdio.h>
#include <string.h>

#include "base/version.h"

static void print_version(void)
{
    printf("ketchd Version: %s\n", KETCH_VERSION);
    printf("Git SHA: %s\n", KETCH_GIT_SHA);
    printf("etcd API Version: 2 (compatible with etcd %s)\n", KETCH_ETCD_COMPAT_VERSION);
}

static void print_usage(void)
{
    printf("Usage:\n\n  ketchd [flags]\n    Start a ketch member.\n\n"
           "  ketchd --version\n    Show the version of ketchd.\n\n"
           "  ketchd -h | --help\n    Show the help information about ketchd.\n");
}

static int flag_is(const char *arg, const char *name)
{
    if (arg[0] != '-') return 0;
    arg += (arg[1] == '-') ? 2 : 1;
    return strcmp(arg, name) == 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (flag_is(argv[i], "version")) {
            print_version();
            return 0;
        }
        if (flag_is(argv[i], "help") || flag_is(argv[i], "h")) {
            print_usage();
            return 0;
        }
    }
    fprintf(stderr, "ketchd: this build cannot serve yet: only --version and --help work\n");
    return 2;
}
