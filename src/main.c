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
    "commands:\n"
    "  get      find or create the SAP Cloud ALM API instance and binding, export the key\n"
    "  plan     the same decision, read-only: what get would do, and why\n"
    "  check    offline checks of a key file (Landscape Management rules, Deployment fitness)\n"
    "  verify   live check of a key: token, scopes, identity zone\n"
    "  export   convert a key file to another --format\n"
    "  fleet    get (or verify, rotate) for every tenant of an inventory, concurrently\n"
    "  rotate   replace the key: new binding, verified, written; old ones deleted on request\n";

static const char USAGE_TAIL[] =
    "\n"
    "global options (before or after the command): --timeout S (default 300), -v/--verbose,\n"
    "                -q/--quiet, --trace, --cacert FILE, --unsafe,\n"
    "                --record FILE (HTTP exchanges, secrets replaced), --replay FILE (offline;\n"
    "                a request that differs from the recording stops the run), --replay-loose\n"
    "                (with --replay: match requests by method and URL only)\n"
    "exit status: 0 done, 1 BTP/API failure, 2 usage or bad input, 3 authentication refused,\n"
    "             4 manual step needed, 5 deadline passed, 6 verification failed\n"
    "Run 'calmbind help COMMAND' (or 'calmbind COMMAND -h') for a command's options; man calmbind.\n";

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

/* Global options are read here (they shape the run) and left in argv so the
 * command's own parser sees the whole command line. */
static int scan_globals(int argc, char **argv, struct calm_host_opts *o)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--") == 0) break;
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = 1;
            if (calm_log_level() < CALM_LOG_DEBUG) calm_log_set_level(CALM_LOG_DEBUG);
        } else if (strcmp(a, "--trace") == 0) {
            o->verbose = 1;
            calm_log_set_level(CALM_LOG_TRACE);
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--unsafe") == 0) {
            o->unsafe = 1;
        } else if (strcmp(a, "--replay-loose") == 0) {
            o->replay_loose = 1;
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            v = argv[++i];
        } else if (strncmp(a, "--timeout=", 10) == 0) {
            v = a + 10;
        } else if ((strcmp(a, "--record") == 0 || strcmp(a, "--replay") == 0) && i + 1 < argc) {
            *(a[4] == 'c' ? &o->record : &o->replay) = argv[++i];
        } else if (strncmp(a, "--record=", 9) == 0 || strncmp(a, "--replay=", 9) == 0) {
            *(a[4] == 'c' ? &o->record : &o->replay) = a + 9;
        } else if (strcmp(a, "--cacert") == 0 && i + 1 < argc) {
            setenv("CALMBIND_CACERT", argv[++i], 1);
        } else if (strncmp(a, "--cacert=", 9) == 0) {
            setenv("CALMBIND_CACERT", a + 9, 1);
        }
        if (v) {
            char *end;
            double t = strtod(v, &end);
            if (*end || !(t > 0) || t > 86400 * 7) {
                calm_log(CALM_LOG_ERROR, "--timeout: '%s' is not a number of seconds (> 0)", v);
                return -1;
            }
            o->timeout = t;
        }
    }
    if (o->record && o->replay) {
        calm_log(CALM_LOG_ERROR, "--record and --replay go one at a time");
        return -1;
    }
    if (o->replay_loose && !o->replay) {
        calm_log(CALM_LOG_ERROR, "--replay-loose goes with --replay FILE");
        return -1;
    }
    /* -q: errors only, unless -v or --trace asked for more */
    if (o->quiet && !o->verbose) calm_log_set_level(CALM_LOG_ERROR);
    return 0;
}

/* argv as given (for the global options) and args, the normalised command
 * line: the command first, its options after it. */
static int run(int given, char **given_argv, int argc, char **args)
{
    struct calm_host_opts opts = { DEFAULT_TIMEOUT, 0, 0, NULL, NULL, 0, 0 };
    int status;
    if (argc < 2 || strcmp(args[1], "--help") == 0 || strcmp(args[1], "-h") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fputs(USAGE, out);
        calm_print_user_commands(out);
        fputs(USAGE_TAIL, out);
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
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n, status = CALM_EXIT_USAGE;
    harden();
    if (args && (n = calm_cmdline_normalise(argc, argv, args)) >= 0)
        status = run(argc, argv, n, args);
    free(args);
    calm_redact_clear();
    return status;
}
