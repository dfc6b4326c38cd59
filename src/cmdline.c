/* cmdline.c: the command line as admins type it elsewhere (git, kubectl, gh):
 * global options before or after the command, `help [COMMAND]`, `version`,
 * and "did you mean" for a mistyped command or global option. */
#include <stdio.h>
#include <string.h>

#include "calm_lua.h"

static char HELP_OPT[] = "--help", VERSION_OPT[] = "--version";

static const char *const COMMANDS[] = {
    "get", "plan", "check", "verify", "export", "fleet", "rotate", "scripts", "help", "version", NULL
};
static const char *const GLOBAL_FLAGS[] = { "verbose", "quiet", "trace", "unsafe", "replay-loose", "help", "version", NULL };
static const char *const GLOBAL_VALUED[] = { "timeout", "cacert", "record", "replay", NULL };

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

static const char *closest(const char *word, const char *const *list)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1, limit = strlen(word) <= 4 ? 1 : 2;
    for (; *list; list++) {
        size_t d = distance(word, *list);
        if (strlen(word) >= 3 && strncmp(*list, word, strlen(word)) == 0 && d > 1) d = 1;
        if (d < best_d) best = *list, best_d = d;
    }
    return best_d <= limit ? best : NULL;
}

const char *calm_cmdline_suggest(const char *word)
{
    return closest(word, COMMANDS);
}

void calm_cmdline_unknown(const char *what)
{
    const char *near = calm_cmdline_suggest(what);
    if (near)
        calm_log(CALM_LOG_ERROR, "unknown command '%s' (did you mean '%s'? see calmbind help)", what, near);
    else
        calm_log(CALM_LOG_ERROR, "unknown command '%s' (see calmbind help)", what);
}

static int in(const char *word, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(word, *list) == 0) return 1;
    return 0;
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
    const char *a = argv[i], *name = a + (a[1] == '-' ? 2 : 1), *eq = strchr(a, '=');
    char base[64];
    if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "--version")) return 0;
    if (!strcmp(a, "-v") || !strcmp(a, "-q")) return 1;
    if (a[1] == '-') {
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        snprintf(base, sizeof base, "%.*s", (int)(n < sizeof base ? n : sizeof base - 1), name);
        if (in(base, GLOBAL_FLAGS) && !eq) return 1;
        if (in(base, GLOBAL_VALUED)) {
            if (eq) return 1;
            if (i + 1 < argc) return 2;
            calm_log(CALM_LOG_ERROR, "option --%s needs a value", base);
            return -1;
        }
        name = base;
    }
    {
        const char *near = closest(name, GLOBAL_FLAGS);
        if (!near) near = closest(name, GLOBAL_VALUED);
        if (near)
            calm_log(CALM_LOG_ERROR, "unknown option %s (did you mean --%s?)", a, near);
        else
            calm_log(CALM_LOG_ERROR, "unknown option %s before the command (see calmbind help)", a);
    }
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
