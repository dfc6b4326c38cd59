/* cmdline.c: the one table of the command line (the commands and the global
 * options: main.c, scripts.c and, through calm.cmdline, calm.cli read it) and
 * the command line as admins type it elsewhere (git, kubectl, gh): global
 * options before or after the command, `help [COMMAND]`, `version`, and "did
 * you mean" for a mistyped command or global option. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calm_lua.h"

static char HELP_OPT[] = "--help", VERSION_OPT[] = "--version";

/* In enum calm_global order; every command's parser (calm.cli) takes these,
 * but for the CALM_OPT_LEADING ones. */
const struct calm_option calm_globals[] = {
    [CALM_G_TIMEOUT] = { "timeout", 0, "DURATION", CALM_OPT_SECONDS,
                         "deadline for the whole run: 90 (seconds), 90s, 10m, 1h, 7d" },
    [CALM_G_CACERT] = { "cacert", 0, "FILE", 0, "trust this CA bundle as well (PEM)" },
    [CALM_G_VERBOSE] = { "verbose", 'v', NULL, 0, "more logging (debug level)" },
    [CALM_G_QUIET] = { "quiet", 'q', NULL, 0, "errors only: no progress, notes or warnings" },
    [CALM_G_TRACE] = { "trace", 0, NULL, 0, "log HTTP exchanges, every secret redacted" },
    [CALM_G_RECORD] = { "record", 0, "FILE", 0, "write the run's HTTP exchanges there, every secret replaced" },
    [CALM_G_REPLAY] = { "replay", 0, "FILE", 0,
                        "answer HTTP from that recording, no network; a request that differs stops the run" },
    [CALM_G_REPLAY_LOOSE] = { "replay-loose", 0, NULL, 0, "with --replay: match requests by method and URL only" },
    [CALM_G_UNSAFE] = { "unsafe", 0, NULL, 0, "full standard library for a custom script" },
    [CALM_G_HELP] = { "help", 'h', NULL, 0, "show this help" },
    [CALM_G_VERSION] = { "version", 0, NULL, CALM_OPT_LEADING, "show the version" },
    [CALM_G_COUNT] = { NULL, 0, NULL, 0, NULL }
};

static const struct calm_option SCRIPTS_OPTIONS[] = {
    { "dump", 0, "DIR", 0, "write the built-in scripts there" },
    { "force", 0, NULL, 0, "with --dump: overwrite files that differ" },
    { NULL, 0, NULL, 0, NULL }
};
static const struct calm_option NO_OPTIONS[] = { { NULL, 0, NULL, 0, NULL } };

/* The order help lists them in. A command with options here is the host's
 * (scripts.c, main.c); the others are scripts whose spec has their options. */
const struct calm_command calm_commands[] = {
    { "get", "find or create the SAP Cloud ALM API instance and binding, export the key", NULL, 0 },
    { "plan", "the same decision, read-only: what get would do, and why", NULL, 0 },
    { "check", "offline checks of a key file (Landscape Management rules, Deployment fitness)", NULL, 0 },
    { "verify", "live check of a key: token, scopes, identity zone", NULL, 0 },
    { "export", "convert a key file to another --format", NULL, 0 },
    { "fleet", "get (or verify, rotate) for every tenant of an inventory, concurrently", NULL, 0 },
    { "discover", "the SAP Cloud ALM subaccounts of a global account: a fleet inventory, SM keys", NULL, 0 },
    { "rotate", "replace the key: new binding, verified, written; old ones deleted on request", NULL, 0 },
    { "completion", "print the shell completion script: calmbind completion bash|zsh", NULL, 0 },
    { "scripts", "list every script and where it comes from (or write the built-in ones out)",
      SCRIPTS_OPTIONS, 0 },
    { "help", "show the help of a command", NO_OPTIONS, CALM_CMD_NAMES_COMMAND },
    { "version", "show the version", NO_OPTIONS, 0 },
    { NULL, NULL, NULL, 0 }
};

int calm_cmdline_match(const struct calm_option *table, int argc, char **argv, int i,
                       const char **value, int *used)
{
    const char *a = argv[i], *eq;
    size_t n;
    int k;
    *value = NULL;
    *used = 1;
    if (a[0] != '-') return -1;
    if (a[1] != '-') {
        for (k = 0; a[1] && !a[2] && table[k].name; k++)
            if (table[k].short_name == a[1] && !table[k].arg) return k;
        return -1;
    }
    eq = strchr(a + 2, '=');
    n = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
    for (k = 0; table[k].name; k++) {
        if (strlen(table[k].name) != n || strncmp(table[k].name, a + 2, n) != 0) continue;
        if (!table[k].arg) return eq ? -1 : k;
        if (eq) *value = eq + 1;
        else if (i + 1 < argc) *value = argv[i + 1], *used = 2;
        else return -2;
        return k;
    }
    return -1;
}

/* A word of only global short flags after one dash ("-vq", "-hv"). */
static int is_bundle(const char *a)
{
    size_t i;
    int k;
    if (a[0] != '-' || a[1] == '-' || !a[1] || !a[2]) return 0;
    for (i = 1; a[i]; i++) {
        for (k = 0; calm_globals[k].name && !(calm_globals[k].short_name == a[i] && !calm_globals[k].arg); k++) {}
        if (!calm_globals[k].name) return 0;
    }
    return 1;
}

char **calm_cmdline_split_shorts(int *argc, char **argv)
{
    static char flags[CALM_G_COUNT][3];
    int i, n = 0, k;
    char **out;
    for (i = 0; i < *argc && strcmp(argv[i], "--") != 0; i++)
        n += is_bundle(argv[i]) ? (int)strlen(argv[i]) - 2 : 0;
    if (!n || !(out = calloc((size_t)(*argc + n + 1), sizeof *out))) return argv;
    for (k = 0; k < CALM_G_COUNT; k++)
        flags[k][0] = '-', flags[k][1] = calm_globals[k].short_name, flags[k][2] = 0;
    for (i = 0, n = 0; i < *argc; i++) {
        const char *c;
        if (i == 0 || !is_bundle(argv[i]) || (i > 0 && strcmp(argv[i - 1], "--") == 0)) {
            out[n++] = argv[i];
            continue;
        }
        for (c = argv[i] + 1; *c; c++)
            for (k = 0; k < CALM_G_COUNT; k++)
                if (calm_globals[k].short_name == *c) { out[n++] = flags[k]; break; }
    }
    *argc = n;
    return out;
}

int calm_parse_duration(const char *s, double *seconds)
{
    static const struct { char unit; double factor; } UNITS[] = {
        { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 0, 0 }
    };
    const char *p = s;
    double v = 0, scale = 1;
    int digits = 0, k;
    /* digits [. digits] [unit]: no sign, exponent, hex, inf or nan (strtod takes those) */
    for (; *p >= '0' && *p <= '9'; p++, digits++) v = v * 10 + (*p - '0');
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) v += (*p - '0') * (scale /= 10);
    if (!digits) return -1;
    if (*p) {
        for (k = 0; UNITS[k].unit && UNITS[k].unit != *p; k++) {}
        if (!UNITS[k].unit || p[1]) return -1;
        v *= UNITS[k].factor;
    }
    *seconds = v;
    return 0;
}

/* Edit distance with adjacent swaps; words longer than 63 bytes never match. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j, d[64][64];
    if (la > 63 || lb > 63) return (size_t)-1;
    for (i = 0; i <= la; i++) d[i][0] = i;
    for (j = 0; j <= lb; j++) d[0][j] = j;
    for (i = 1; i <= la; i++)
        for (j = 1; j <= lb; j++) {
            size_t v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

const char *calm_cmdline_closest(const char *word, const char *const *list, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, limit = strlen(word) <= 4 ? 1 : 2, i;
    for (i = 0; i < n; i++) {
        size_t d = distance(word, list[i]);
        if (strlen(word) >= 3 && strncmp(list[i], word, strlen(word)) == 0 && d > 1) d = 1;
        if (d < best_d || (d == best_d && best && strcmp(list[i], best) < 0)) best = list[i], best_d = d;
    }
    return best_d <= limit ? best : NULL;
}

const char *calm_cmdline_suggest(const char *word)
{
    const char *names[sizeof calm_commands / sizeof calm_commands[0]];
    size_t n = 0;
    for (; calm_commands[n].name; n++) names[n] = calm_commands[n].name;
    return calm_cmdline_closest(word, names, n);
}

void calm_cmdline_unknown(const char *what)
{
    const char *near = calm_cmdline_suggest(what);
    if (near)
        calm_log(CALM_LOG_ERROR, "unknown command '%s' (did you mean '%s'? see calmbind help)", what, near);
    else
        calm_log(CALM_LOG_ERROR, "unknown command '%s' (see calmbind help)", what);
}

static int looks_like_script(const char *arg)
{
    size_t n = strlen(arg);
    return strchr(arg, '/') || (n > 4 && strcmp(arg + n - 4, ".lua") == 0);
}

/* One leading option: how many arguments it takes up (1 or 2), 0 for
 * --help/--version, -1 after reporting an error. */
static int leading_option(int argc, char **argv, int i)
{
    const char *a = argv[i], *value, *near, *names[CALM_G_COUNT];
    int used, k = calm_cmdline_match(calm_globals, argc, argv, i, &value, &used);
    char base[64];
    if (k == CALM_G_HELP || k == CALM_G_VERSION) return 0;
    if (k >= 0) return used;
    if (k == -2) {
        calm_log(CALM_LOG_ERROR, "option %s needs a value", a);
        return -1;
    }
    snprintf(base, sizeof base, "%.*s", (int)strcspn(a + strspn(a, "-"), "="), a + strspn(a, "-"));
    for (k = 0; k < CALM_G_COUNT; k++) names[k] = calm_globals[k].name;
    if ((near = calm_cmdline_closest(base, names, CALM_G_COUNT)) != NULL)
        calm_log(CALM_LOG_ERROR, "unknown option %s (did you mean --%s?)", a, near);
    else
        calm_log(CALM_LOG_ERROR, "unknown option %s before the command (see calmbind help)", a);
    return -1;
}

int calm_cmdline_normalise(int argc, char **argv, char **out)
{
    int i = 1, n = 0, k, cmd;
    out[n++] = argv[0];
    while (i < argc && argv[i][0] == '-' && argv[i][1] && strcmp(argv[i], "--") != 0) {
        int used = leading_option(argc, argv, i);
        if (used < 0) return -1;
        if (used == 0) {                    /* calmbind -v --help: the overview */
            out[n++] = argv[i];
            out[n] = NULL;
            return n;
        }
        i += used;
    }
    cmd = i;
    if (cmd < argc && strcmp(argv[cmd], "--") == 0) cmd++;
    if (cmd >= argc) {
        if (cmd == 1) { out[n] = NULL; return n; }
        calm_log(CALM_LOG_ERROR, "missing COMMAND after the options (see calmbind help)");
        return -1;
    }
    if (strcmp(argv[cmd], "help") == 0) {   /* help [COMMAND]: COMMAND --help */
        if (cmd + 1 < argc) out[n++] = argv[cmd + 1];
        out[n++] = HELP_OPT;
        out[n] = NULL;
        return n;
    }
    if (strcmp(argv[cmd], "version") == 0) {
        out[n++] = VERSION_OPT;
        out[n] = NULL;
        return n;
    }
    out[n++] = argv[cmd];
    /* leading global options follow the command, whose parser accepts them;
     * a script of the user's own gets only its own arguments */
    if (!looks_like_script(argv[cmd]))
        for (k = 1; k < i; k++) out[n++] = argv[k];
    for (k = cmd + 1; k < argc; k++) out[n++] = argv[k];
    out[n] = NULL;
    return n;
}
