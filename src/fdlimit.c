/* fdlimit.c: the process's file descriptor limit. calmbind raises the soft
 * RLIMIT_NOFILE to the hard one at start (the soft default, often 1024, is
 * far below what thousands of flows need) and keeps the scheduler's
 * concurrency within what is left, so running out of descriptors is not
 * the normal way to find the limit. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "calm_lua.h"

/* Linux refuses a soft limit above fs.nr_open even when the hard limit is
 * RLIM_INFINITY; 1 << 20 is its default. */
#define NOFILE_CEILING ((rlim_t)1 << 20)

long calm_fd_soft_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)LONG_MAX) return LONG_MAX;
    return (long)rl.rlim_cur;
}

long calm_fd_raise(void)
{
    struct rlimit rl;
    rlim_t want;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    want = rl.rlim_max;
    if (want == RLIM_INFINITY) want = NOFILE_CEILING;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit up = rl;
        up.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &up) != 0 && want > NOFILE_CEILING) {
            up.rlim_cur = NOFILE_CEILING;   /* nr_open is lower than the hard limit */
            (void)setrlimit(RLIMIT_NOFILE, &up);
        }
    }
    return calm_fd_soft_limit();
}

int calm_fd_transfer_cap(long soft)
{
    long cap;
    if (soft < 0 || soft == LONG_MAX) return INT_MAX;
    cap = (soft - CALM_FD_RESERVE) / 2;
    if (cap < 1) cap = 1;
    return cap > INT_MAX ? INT_MAX : (int)cap;
}

/* CURLOPT_OPENSOCKETFUNCTION: curl's own socket(), remembering why it failed
 * in *(int *)clientp (curl reports only "couldn't connect"). */
curl_socket_t calm_fd_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    int fd;
    (void)purpose;
    fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0 && clientp) *(int *)clientp = errno;
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* Whether a failed transfer ran out of descriptors: its socket() said so,
 * or (a resolver or TLS failure, which keep errno to themselves) no
 * descriptor can be had right now. */
int calm_fd_exhausted(int socket_errno)
{
    int fd;
    if (socket_errno == EMFILE || socket_errno == ENFILE) return 1;
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    return errno == EMFILE || errno == ENFILE;
}
