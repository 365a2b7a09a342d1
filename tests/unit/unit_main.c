/* The main() every unit test executable shares: runs the one suite its file defines
 * (KETCH_SUITE, set by tests/unit/CMakeLists.txt from the file name) and exits non-zero
 * if any test failed. CK_FORK follows Check's environment (CK_FORK=no for gdb). */
#include <check.h>
#include <stdlib.h>

Suite *KETCH_SUITE(void);

int main(void)
{
    SRunner *runner = srunner_create(KETCH_SUITE());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
