/* main.c: process set-up (hardening, global options), then the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lua.h>

#include "calm_lua.h"

#define DEFAULT_TIMEOUT 300.0

static const char USAGE[] =
    "usage: calmbind COMMAND [options]      run a built-in or admin-provided command\n"
    "       calmbind FILE.lua [args]        run your own script with the calmbind library\n"
    "       calmbind scripts [--dump DIR [--force]]  list every script and where it comes from\n"
    "                                       (or write the built-in ones out)\n"
    "       calmbind help [COMMAND] | version\n"
    "\n"
    "commands:\n";

static const char USAGE_TAIL[] =
    "\nexit status: 0 done, 1 BTP/API failure, 2 usage or bad input, 3 authentication refused,\n"
    "             4 manual step needed, 5 deadline passed, 6 verification failed\n"
    "Run 'calmbind help COMMAND' (or 'calmbind COMMAND -h') for a command's options; man calmbind.\n";

/* The overview: commands and global options from the table (cmdline.c). */
static void usage(FILE *out)
{
    const struct calm_command *c;
    const struct calm_option *o;
    fputs(USAGE, out);
    for (c = calm_commands; c->name; c++)
        if (!c->options) fprintf(out, "  %-10s %s\n", c->name, c->summary);
    calm_print_user_commands(out);
    fputs("\nglobal options (before or after the command):\n", out);
    for (o = calm_globals; o->name; o++) {
        char left[64];
        int n = o->short_name ? snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->name)
                              : snprintf(left, sizeof left, "  --%s", o->name);
        if (o->arg) n += snprintf(left + n, sizeof left - (size_t)n, " %s", o->arg);
        fprintf(out, "%s%*s%s", left, n < 26 ? 26 - n : 1, "", o->help);
        if (o - calm_globals == CALM_G_TIMEOUT) fprintf(out, " (default %g)", DEFAULT_TIMEOUT);
        fputc('\n', out);
    }
    fputs(USAGE_TAIL, out);
}

static int stderr_tty;

/* Ctrl-C: one line and exit 130. Key files are only ever made by a rename
 * (fs.c blocks this signal while a temporary file exists), so nothing is left
 * half-written, and a rerun adopts what BTP already has. */
static void on_interrupt(int sig)
{
    static const char erase[] = "\r\033[K", msg[] = "interrupted; nothing half-written; rerun resumes\n";
    (void)sig;
    if (stderr_tty && write(2, erase, sizeof erase - 1) < 0) _exit(130);
    if (write(2, msg, sizeof msg - 1) < 0) _exit(130);
    _exit(130);
}

/* Secrets live in this process's memory: no core files, no ptrace by others. */
static void harden(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    stderr_tty = isatty(2);
    sigaction(SIGINT, &sa, NULL);
    struct rlimit none = { 0, 0 };
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    /* Debian's libcurl writes TLS session keys to this file (mode 0644). */
    if (getenv("SSLKEYLOGFILE")) {
        unsetenv("SSLKEYLOGFILE");
        calm_log(CALM_LOG_WARN, "SSLKEYLOGFILE was set; cleared it so no TLS session keys are written");
    }
}

static const char *const CA_VARS[] = { "CALMBIND_CACERT", "SSL_CERT_FILE", "CURL_CA_BUNDLE", NULL };

/* --timeout's value: a duration (calm_parse_duration), > 0, at most a week. */
static int set_timeout(const char *v, struct calm_host_opts *o)
{
    double t;
    if (calm_parse_duration(v, &t) != 0 || !(t > 0) || t > 86400 * 7) {
        calm_log(CALM_LOG_ERROR, "--timeout: '%s' is not a duration (> 0, at most 7d): 90, 90s, 10m, 1h, 7d", v);
        return -1;
    }
    o->timeout = t;
    return 0;
}

/* Global options are read here (they shape the run) and left in argv so the
 * command's own parser sees the whole command line. A valued option given
 * last without its value is left to that parser to report. */
static int scan_globals(int argc, char **argv, struct calm_host_opts *o)
{
    int i, used, verbose_asked = 0;
    for (i = 1; i < argc; i += used) {
        const char *v;
        if (strcmp(argv[i], "--") == 0) break;
        switch (calm_cmdline_match(calm_globals, argc, argv, i, &v, &used)) {
        case CALM_G_VERBOSE:
            o->verbose = verbose_asked = 1;
            if (calm_log_level() < CALM_LOG_DEBUG) calm_log_set_level(CALM_LOG_DEBUG);
            break;
        case CALM_G_TRACE:
            o->verbose = 1;
            calm_log_set_level(CALM_LOG_TRACE);
            break;
        case CALM_G_QUIET: o->quiet = 1; break;
        case CALM_G_UNSAFE: o->unsafe = 1; break;
        case CALM_G_REPLAY_LOOSE: o->replay_loose = 1; break;
        case CALM_G_TIMEOUT:
            if (set_timeout(v, o) != 0) return -1;
            break;
        case CALM_G_RECORD: o->record = v; break;
        case CALM_G_REPLAY: o->replay = v; break;
        case CALM_G_CACERT: o->cacert = v; break;
        default: break;
        }
    }
    if (verbose_asked && o->quiet) {
        calm_log(CALM_LOG_ERROR, "-v (--verbose) and -q (--quiet) contradict each other: more logging, and "
                 "errors only; give one");
        return -1;
    }
    if (o->record && o->replay) {
        calm_log(CALM_LOG_ERROR, "--record and --replay go one at a time");
        return -1;
    }
    if (o->replay_loose && !o->replay) {
        calm_log(CALM_LOG_ERROR, "--replay-loose goes with --replay FILE");
        return -1;
    }
    /* The CA bundle every request trusts as well, unless it names its own:
     * --cacert, else the first of these set (calm.http gets it from the host). */
    for (i = 0; !o->cacert && CA_VARS[i]; i++)
        if ((o->cacert = getenv(CA_VARS[i])) != NULL && !*o->cacert) o->cacert = NULL;
    /* -q: errors only, unless -v or --trace asked for more */
    if (o->quiet && !o->verbose) calm_log_set_level(CALM_LOG_ERROR);
    return 0;
}

/* argv as given (for the global options) and args, the normalised command
 * line: the command first, its options after it. */
static int run(int given, char **given_argv, int argc, char **args)
{
    struct calm_host_opts opts = { DEFAULT_TIMEOUT, 0, 0, NULL, NULL, 0, 0, NULL };
    int status;
    if (argc < 2 || strcmp(args[1], "--help") == 0 || strcmp(args[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CALM_EXIT_USAGE : CALM_EXIT_OK;
    }
    if (strcmp(args[1], "--version") == 0) {
        printf("calmbind %s (%s, %s)\n", CALM_VERSION, LUA_RELEASE, curl_version());
        return CALM_EXIT_OK;
    }
    /* the command line as given: global options before a script of the
     * user's own are not passed on to it, yet they shape its run */
    if (scan_globals(given, given_argv, &opts) != 0) return CALM_EXIT_USAGE;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        calm_log(CALM_LOG_ERROR, "libcurl failed to initialise");
        return CALM_EXIT_API;
    }
    status = calm_host_main(argc - 1, args + 1, &opts);
    curl_global_cleanup();
    return status;
}

int main(int argc, char **argv)
{
    char **given = calm_cmdline_split_shorts(&argc, argv);     /* -vq: -v -q */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n, status = CALM_EXIT_USAGE;
    harden();
    if (args && (n = calm_cmdline_normalise(argc, given, args)) >= 0)
        status = run(argc, given, n, args);
    free(args);
    if (given != argv) free(given);
    calm_redact_clear();
#ifndef __SANITIZE_ADDRESS__
    /* Ours is freed and flushed now; the exit handlers left are those of
     * libcurl's 35 libraries (OpenSSL, GnuTLS, Kerberos...), which only free
     * what the kernel takes back anyway: 0.4 ms of a 50 ms-a-request get.
     * An ASan build returns, so that LeakSanitizer still looks. */
    fflush(NULL);
    _exit(status);
#endif
    return status;
}
