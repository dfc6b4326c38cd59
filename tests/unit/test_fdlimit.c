/* test_fdlimit.c: raising the soft RLIMIT_NOFILE to the hard limit, and the
 * number of transfers a descriptor limit allows (src/fdlimit.c). */
#include <limits.h>
#include <sys/resource.h>

#include "calm.h"
#include "check.h"

int main(void)
{
    struct rlimit rl, low;
    long got;
    check_suite = "unit/fdlimit";
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit works");
    low = rl;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > 100) {
        low.rlim_cur = 100;
        CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0 && calm_fd_soft_limit() == 100,
              "the test can lower its soft limit");
        got = calm_fd_raise();
        CHECK(got == (long)rl.rlim_max && calm_fd_soft_limit() == got,
              "calm_fd_raise lifts the soft limit to the hard limit");
    } else {
        got = calm_fd_raise();
        CHECK(got >= 100, "calm_fd_raise leaves a usable soft limit");
    }
    low.rlim_cur = low.rlim_max = 200;
    if (setrlimit(RLIMIT_NOFILE, &low) == 0) {
        CHECK(calm_fd_raise() == 200, "a hard limit of 200 stays 200 (no privilege to raise it)");
        CHECK(calm_fd_transfer_cap(calm_fd_soft_limit()) == (200 - CALM_FD_RESERVE) / 2,
              "200 descriptors allow (200 - reserve) / 2 transfers");
    }
    CHECK(calm_fd_transfer_cap(20) == 1, "a tiny limit still allows one transfer");
    CHECK(calm_fd_transfer_cap(1 << 20) == ((1 << 20) - CALM_FD_RESERVE) / 2,
          "a large limit allows half of it, less the reserve");
    CHECK(calm_fd_transfer_cap(-1) == INT_MAX, "an unknown limit does not cap");
    return CHECK_DONE();
}
