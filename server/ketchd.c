/* ketchd's entry point: parses etcd's flags (server/config.h). Until the single-member
 * server lands (issue 6) a valid configuration is reported and refused plainly. */
#include <stdio.h>

#include "base/version.h"
#include "server/config.h"

extern char **environ;

static void print_version(void)
{
    printf("ketchd Version: %s\n", KETCH_VERSION);
    printf("Git SHA: %s\n", KETCH_GIT_SHA);
    printf("etcd API Version: 2 (compatible with etcd %s)\n", KETCH_ETCD_COMPAT_VERSION);
}

int main(int argc, char **argv)
{
    struct srv_config cfg;
    enum srv_config_action action;
    char err[SRV_CONFIG_ERR_BYTES];
    int rc = srv_config_parse(&cfg, argc, argv, environ, &action, err, sizeof(err));
    int status = 0;
    if (rc < 0) {
        fprintf(stderr, "ketchd: %s\n", err);
        status = 2;
    } else if (action == SRV_CONFIG_SHOW_VERSION) {
        print_version();
    } else if (action == SRV_CONFIG_SHOW_HELP) {
        fputs(srv_config_usage(), stdout);
    } else {
        fprintf(stderr, "ketchd: this build cannot serve yet: only --version and --help work\n");
        status = 2;
    }
    srv_config_deinit(&cfg);
    return status;
}
