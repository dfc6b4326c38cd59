/* calm_lua.h: the Lua side of the core: module openers, the scheduler seam
 * that lets calm.http (and calm.task.sleep) park a flow, and the host. */
#ifndef CALM_LUA_H
#define CALM_LUA_H

#include <stdio.h>
#include <lua.h>
#include <curl/curl.h>
#include "calm.h"

/* One Lua module per C file; each exports only its opener. */
int luaopen_calm_task(lua_State *L);

/* fdlimit.c, for calm.http: a socket opener that keeps socket()'s errno in
 * *(int *)clientp, and whether a failure was running out of descriptors. */
curl_socket_t calm_fd_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a);
int calm_fd_exhausted(int socket_errno);
int luaopen_calm_http(lua_State *L);
int luaopen_calm_codec(lua_State *L);
int luaopen_calm_fs(lua_State *L);
int luaopen_calm_log(lua_State *L);
int luaopen_calm_cmdline(lua_State *L);
int luaopen_calm_x509(lua_State *L);
int luaopen_calm_url(lua_State *L);

/* ---- lbuf.c: the Lua-owned buffer ---------------------------------------- */
/* Pushes a userdata holding an empty calm_buf that __gc / __close wipe and
 * free; returns the buffer. */
calm_buf *calm_lbuf_new(lua_State *L);
/* Pushes the buffer's bytes as a string, then wipes and frees the buffer. */
void calm_lbuf_push(lua_State *L, calm_buf *b);
/* Gives the userdata on top the metatable meta (made on first use) whose
 * __gc and __close both call release. */
void calm_set_releaser(lua_State *L, const char *meta, lua_CFunction release);

/* Appends the table at idx form-encoded (keys sorted bytewise, space as '+')
 * to out. Returns 0; -1 with a message pushed for a key that is not a string
 * or a value that is not a string or number; -2 when memory runs out. */
int calm_form_encode(lua_State *L, int idx, calm_buf *out);
/* The same as a URL query (RFC 3986: space as %20): values may also be
 * booleans ("true", "false") and lists of strings and numbers (each item
 * encoded, joined by literal commas). Returns as calm_form_encode. */
int calm_query_encode(lua_State *L, int idx, calm_buf *out);

/* ---- scheduler seam (flow.c, transfer.c, loop.c, taskrun.c) ----------------------------
 * A flow is a coroutine the scheduler owns. A C function running in a flow
 * parks it on a transfer and returns calm_sched_park(); when curl reports
 * the transfer done the scheduler calls finish(), which pushes the values the
 * parked C function returns onto co, and resumes the flow with them. */
typedef struct calm_transfer calm_transfer;
struct calm_transfer {
    CURL *easy;                /* CURLOPT_PRIVATE of easy points at this struct */
    /* Pushes results onto co and returns how many. Runs outside any libcurl
     * callback; may use the Lua API on co but must not raise. */
    int (*finish)(calm_transfer *t, lua_State *co, CURLcode rc);
    /* Releases what finish would have released, after the scheduler removed
     * the handle (flow cancelled or past its deadline). */
    void (*abandon)(calm_transfer *t);
};

/* Raises unless L is a flow coroutine of the scheduler (what=function name). */
void calm_sched_check_flow(lua_State *L, const char *what);
/* Seconds left before the current flow's deadline (HUGE_VAL if none). */
double calm_sched_remaining(lua_State *L);
/* 1 if a flow of secret scope `scope` has not finished yet (log.forget waits). */
int calm_sched_scope_live(lua_State *L, unsigned scope);
/* Adds t->easy to the multi handle and yields the flow. Call as
 * `return calm_sched_park(L, t);` from a lua_CFunction. t must stay valid
 * until finish or abandon is called (anchor it). */
int calm_sched_park(lua_State *L, calm_transfer *t);
/* Installs the count hook that stops Lua code running past its flow's deadline. */
void calm_sched_install_hook(lua_State *L);
/* Runs the function below nargs arguments on the stack as the root flow with a
 * deadline of timeout seconds (<= 0: none) until it finishes. Replaces them
 * with its results and returns how many, or -1 with the error message pushed.
 * *deadline_hit tells whether the run's deadline passed and stopped a flow
 * (the hook) or saw the main flow fail. */
int calm_sched_run_root(lua_State *L, int nargs, double timeout, int *deadline_hit);
/* Pushes nil, "deadline passed (--timeout)", "DEADLINE": what a blocking call
 * returns once the flow's deadline has passed. */
int calm_sched_push_deadline(lua_State *L);

/* ---- host (host.c) -------------------------------------------------------- */
struct calm_host_opts {
    double timeout;        /* whole-run deadline in seconds; <= 0: none */
    int unsafe;            /* full standard library for a custom script */
    int verbose;           /* -v: tracebacks and debug logs */
    const char *record;    /* --record FILE: write the run's HTTP exchanges there */
    const char *replay;    /* --replay FILE: answer HTTP from that recording */
    int quiet;             /* -q: errors only */
    int replay_loose;      /* --replay-loose: match exchanges by method and URL only */
    const char *cacert;    /* CA bundle requests trust as well (--cacert, SSL_CERT_FILE...), or NULL */
};
/* lua_CFunction: prepares a fresh state (libraries, sandbox unless arg 1 is
 * true, built-in modules and the script searcher, strict globals, deadline
 * hook); arg 2, a string or nil, is calm.http's default CA bundle. Call it
 * protected. */
int calm_host_setup(lua_State *L);
/* Runs `calmbind <argv...>` (argv[0] is the command or script) and returns the
 * exit status. Never raises. */
int calm_host_main(int argc, char **argv, const struct calm_host_opts *opts);

/* ---- sandbox.c ------------------------------------------------------------ */
/* Opens the standard libraries a script may use (all of them and debug when
 * unsafe), with coroutine.resume/close guarded against flows. */
void calm_sandbox_open_libs(lua_State *L, int unsafe);
/* Makes reading or assigning an undeclared global raise. */
void calm_sandbox_strict_globals(lua_State *L);

/* ---- scripts.c: where scripts come from ---------------------------------- */
/* Loads scripts/<rel> (e.g. "calm/key.lua") from the first override directory
 * that has it, else from the built-in scripts; -v logs which file. Pushes the
 * chunk and returns 0, or pushes a message and returns -1 (it does not load)
 * or CALM_SCRIPT_MISSING (there is no such script). Files load as text only. */
#define CALM_SCRIPT_MISSING (-2)
int calm_load_script(lua_State *L, const char *rel);
/* `calmbind scripts [--dump DIR [--force]]`; argv[0] is "scripts". */
int calm_scripts_command(int argc, char **argv);
/* For --help: the commands found in the override directories. */
void calm_print_user_commands(FILE *out);

/* ---- cmdline.c: the command-line table, the command line as admins type it */
#define CALM_OPT_SECONDS 1u  /* the value is a number of seconds, > 0 */
#define CALM_OPT_LEADING 2u  /* only before the command (--version): no command takes it */
struct calm_option {
    const char *name;        /* the long name, without "--" */
    char short_name;         /* 'v' for -v, or 0 */
    const char *arg;         /* what the value is ("FILE"); NULL for a flag */
    unsigned flags;          /* CALM_OPT_* */
    const char *help;
};
enum calm_global {
    CALM_G_TIMEOUT, CALM_G_CACERT, CALM_G_VERBOSE, CALM_G_QUIET, CALM_G_TRACE, CALM_G_RECORD,
    CALM_G_REPLAY, CALM_G_REPLAY_LOOSE, CALM_G_UNSAFE, CALM_G_HELP, CALM_G_VERSION, CALM_G_COUNT
};
/* The global options in enum calm_global order (the order help lists them
 * in), then one with a NULL name. */
extern const struct calm_option calm_globals[];
#define CALM_CMD_NAMES_COMMAND 1u   /* its argument is a command's name (help) */
struct calm_command {
    const char *name;
    const char *summary;
    /* The options of a command the host runs itself (scripts, help, version),
     * NULL-name terminated; NULL for a command script, whose spec has them. */
    const struct calm_option *options;
    unsigned flags;          /* CALM_CMD_* */
};
extern const struct calm_command calm_commands[];   /* NULL-name terminated */
/* The option of table at argv[i] ("--name", "--name=value", "-v"): returns
 * its index, with *value its value (NULL for a flag) and *used the arguments
 * it takes up (1 or 2); -1 if argv[i] is none of them (a flag given a value
 * is none); -2 if its value is missing. */
int calm_cmdline_match(const struct calm_option *table, int argc, char **argv, int i,
                       const char **value, int *used);
/* Rewrites argv into out (room for argc + 1): leading global options move
 * after the command, `help [CMD]` becomes `CMD --help` (or `--help`),
 * `version` becomes `--version`. Returns the new argc, or -1 after logging a
 * usage error (an unknown option before the command, with a suggestion). */
int calm_cmdline_normalise(int argc, char **argv, char **out);
/* Of the n words of list, the one a typo of word could have meant (a prefix,
 * or 2 edits away, 1 for a word of 4 letters or fewer; the first in byte
 * order among the nearest), or NULL. */
const char *calm_cmdline_closest(const char *word, const char *const *list, size_t n);
/* A duration as every option takes it: 90 (seconds), 90s, 10m, 1h, 7d, a
 * fraction allowed (1.5h). 0 and *seconds, or -1 for anything else. */
int calm_parse_duration(const char *s, double *seconds);
/* argv with bundled short flags split (-vq: -v -q), for the flags of
 * calm_globals; a new array (argv's strings and static ones), *argc updated,
 * or argv itself when there is nothing to split or no memory. */
char **calm_cmdline_split_shorts(int *argc, char **argv);
/* The stock command a mistyped one is closest to, or NULL. */
const char *calm_cmdline_suggest(const char *word);
/* Logs "unknown command 'x'", with a suggestion when there is one. */
void calm_cmdline_unknown(const char *what);

/* Built-in scripts (generated into build/embedded.c from scripts/): the
 * source and the chunk tools/embed.c precompiled from it. */
struct calm_embedded {
    const char *name;
    const char *source;
    size_t len;
    const char *chunk;
    size_t chunk_len;
};
extern const struct calm_embedded calm_embedded_scripts[];
extern const size_t calm_embedded_count;

#endif
