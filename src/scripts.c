/* scripts.c: where a script comes from. The admin's directories
 * (CALMBIND_PATH, then $XDG_CONFIG_HOME/calmbind/scripts) are searched before
 * the scripts built into the binary; `calmbind scripts` lists every script
 * with its origin or writes the built-in ones out, and --help lists the
 * commands the admin added. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "calm_lua.h"

#define MAX_DEPTH 4          /* scripts/calm/... is two levels; room to spare */
#define MAX_LISTED 1024

static const struct calm_embedded *calm_find_embedded(const char *rel)
{
    size_t i;
    for (i = 0; i < calm_embedded_count; i++)
        if (strcmp(calm_embedded_scripts[i].name, rel) == 0) return &calm_embedded_scripts[i];
    return NULL;
}

/* The index-th override directory (CALMBIND_PATH entries, then
 * $XDG_CONFIG_HOME/calmbind/scripts or ~/.config/calmbind/scripts) into out;
 * returns 0 past the last one. */
static int calm_script_dir(int index, char *out, size_t size)
{
    const char *path = getenv("CALMBIND_PATH"), *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    const char *p = path ? path : "";
    int n = 0;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len && n++ == index) {
            snprintf(out, size, "%.*s", (int)len, p);
            return 1;
        }
        p += len + (colon ? 1 : 0);
    }
    if (n != index) return 0;
    if (xdg && *xdg) snprintf(out, size, "%s/calmbind/scripts", xdg);
    else if (home && *home) snprintf(out, size, "%s/.config/calmbind/scripts", home);
    else return 0;
    return 1;
}

/* out = a "/" b; returns 0, or -1 when it does not fit (the path is skipped). */
static int join(char *out, size_t size, const char *a, const char *b)
{
    int n = snprintf(out, size, "%s/%s", a, b);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The first override file for rel (e.g. "calm/key.lua"), into path; 0 if none. */
static int find_override(const char *rel, char *path, size_t size)
{
    char dir[4096];
    int i;
    for (i = 0; calm_script_dir(i, dir, sizeof dir); i++) {
        struct stat st;
        if (join(path, size, dir, rel) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) return 1;
    }
    return 0;
}

int calm_load_script(lua_State *L, const char *rel)
{
    const struct calm_embedded *e = calm_find_embedded(rel);
    char path[4096];
    if (find_override(rel, path, sizeof path)) {
        if (e) calm_log(CALM_LOG_DEBUG, "%s: using %s instead of the built-in script", rel, path);
        else calm_log(CALM_LOG_DEBUG, "%s: using %s", rel, path);
        return luaL_loadfilex(L, path, "t") == LUA_OK ? 0 : -1;
    }
    if (e) {
        char name[256];
        snprintf(name, sizeof name, "@scripts/%s", rel);
        /* The precompiled chunk loads without the compiler; a Lua whose
         * chunk format differs from the build's (another word size, another
         * 5.4 format) refuses it at the header, and the source is compiled. */
        if (e->chunk && luaL_loadbufferx(L, e->chunk, e->chunk_len, name, "b") == LUA_OK) return 0;
        if (e->chunk) {
            calm_log(CALM_LOG_DEBUG, "%s: %s; compiling its source", rel, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        return luaL_loadbufferx(L, e->source, e->len, name, "t") == LUA_OK ? 0 : -1;
    }
    lua_pushfstring(L, "no script '%s' (built in or in CALMBIND_PATH)", rel);
    return CALM_SCRIPT_MISSING;
}

/* ---- the list of every script ----------------------------------------------- */

struct names { char *v[MAX_LISTED]; int n; };

static void add_name(struct names *s, const char *name)
{
    int i;
    for (i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0) return;
    if (s->n < MAX_LISTED && (s->v[s->n] = strdup(name)) != NULL) s->n++;
}

/* Adds the .lua files below dir/sub (relative names) to s. */
static void scan_dir(const char *dir, const char *sub, int depth, struct names *s)
{
    char path[4096], rel[4096];
    struct dirent *d;
    DIR *dp;
    snprintf(path, sizeof path, "%s%s%s", dir, *sub ? "/" : "", sub);
    if (depth > MAX_DEPTH || !(dp = opendir(path))) return;
    while ((d = readdir(dp)) != NULL) {
        struct stat st;
        size_t n = strlen(d->d_name);
        if (d->d_name[0] == '.') continue;
        if (*sub ? join(rel, sizeof rel, sub, d->d_name) : join(rel, sizeof rel, ".", d->d_name)) continue;
        if (!*sub) memmove(rel, rel + 2, strlen(rel + 2) + 1);
        if (join(path, sizeof path, dir, rel) != 0 || stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) scan_dir(dir, rel, depth + 1, s);
        else if (S_ISREG(st.st_mode) && n > 4 && strcmp(d->d_name + n - 4, ".lua") == 0) add_name(s, rel);
    }
    closedir(dp);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_scripts(void)
{
    struct names s;
    char dir[4096], path[4096];
    size_t k;
    int i;
    s.n = 0;
    for (k = 0; k < calm_embedded_count; k++) add_name(&s, calm_embedded_scripts[k].name);
    for (i = 0; calm_script_dir(i, dir, sizeof dir); i++) scan_dir(dir, "", 0, &s);
    qsort(s.v, (size_t)s.n, sizeof s.v[0], cmp_name);
    for (i = 0; i < s.n; i++) {
        int builtin = calm_find_embedded(s.v[i]) != NULL;
        if (find_override(s.v[i], path, sizeof path))
            printf("%-24s %s%s\n", s.v[i], path, builtin ? " (overrides the built-in script)" : "");
        else
            printf("%-24s built in\n", s.v[i]);
        free(s.v[i]);
    }
}

/* ---- calmbind scripts --dump DIR [--force] ---------------------------------- */

static int mkdirs_for(char *path)
{
    char *p;
    for (p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return 0;
}

static int write_new(const char *path, const struct calm_embedded *e, int force)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), 0644);
    ssize_t w;
    if (fd < 0) return -1;
    w = write(fd, e->source, e->len);
    if (close(fd) != 0 || w != (ssize_t)e->len) return -1;
    return 0;
}

static int dump_scripts(const char *to, int force)
{
    char path[4096];
    size_t i;
    struct stat st;
    for (i = 0; i < calm_embedded_count && !force; i++) {   /* refuse before writing anything */
        snprintf(path, sizeof path, "%s/%s", to, calm_embedded_scripts[i].name);
        if (lstat(path, &st) == 0) {
            calm_log(CALM_LOG_ERROR, "scripts --dump: %s exists; not overwriting your scripts "
                     "(--force overwrites)", path);
            return CALM_EXIT_USAGE;
        }
    }
    for (i = 0; i < calm_embedded_count; i++) {
        const struct calm_embedded *e = &calm_embedded_scripts[i];
        snprintf(path, sizeof path, "%s/%s", to, e->name);
        if (mkdirs_for(path) != 0 || write_new(path, e, force) != 0) {
            calm_log(CALM_LOG_ERROR, "scripts --dump: cannot write %s: %s", path, strerror(errno));
            return CALM_EXIT_USAGE;
        }
        printf("%s\n", path);
    }
    return CALM_EXIT_OK;
}

int calm_scripts_command(int argc, char **argv)
{
    const struct calm_option *own = NULL;
    const char *dump = NULL, *v;
    int i, used, k, force = 0;
    for (k = 0; calm_commands[k].name; k++)
        if (strcmp(calm_commands[k].name, "scripts") == 0) own = calm_commands[k].options;
    for (i = 1; i < argc; i += used) {
        if ((k = calm_cmdline_match(own, argc, argv, i, &v, &used)) >= 0) {
            if (own[k].arg && dump) k = -1;   /* --dump twice */
            else if (own[k].arg) dump = v;
            else force = 1;
        } else if ((k = calm_cmdline_match(calm_globals, argc, argv, i, &v, &used)) == CALM_G_HELP) {
            fputs("usage: calmbind scripts [--dump DIR [--force]]\n\n"
                  "List every script and where it comes from (built in, or a file in CALMBIND_PATH or\n"
                  "~/.config/calmbind/scripts); --dump DIR writes the built-in ones there, --force\n"
                  "overwrites files that differ. Global options: see calmbind help.\n", stdout);
            return CALM_EXIT_OK;
        }
        /* a global option (and its value) is main's; anything else is wrong */
        if (k < 0) {
            calm_log(CALM_LOG_ERROR, "scripts: unexpected '%s' (usage: calmbind scripts [--dump DIR [--force]])", argv[i]);
            return CALM_EXIT_USAGE;
        }
    }
    if (force && !dump) {
        calm_log(CALM_LOG_ERROR, "scripts: --force goes with --dump DIR");
        return CALM_EXIT_USAGE;
    }
    if (dump) return dump_scripts(dump, force);
    list_scripts();
    return CALM_EXIT_OK;
}

/* ---- --help: the commands an admin added ------------------------------------ */

/* The summary of a command file: its first line, "-- calmbind NAME: what". */
static void summary_of(const char *path, const char *name, char *out, size_t size)
{
    char line[256], prefix[80];
    FILE *f = fopen(path, "r");
    char *p = line;
    out[0] = 0;
    if (!f) return;
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(p, "--", 2) == 0) {
            p += 2 + strspn(p + 2, " ");
            snprintf(prefix, sizeof prefix, "calmbind %s", name);
            if (strncmp(p, prefix, strlen(prefix)) == 0) {
                p += strlen(prefix);
                p += strspn(p, " ");
                if (*p == ':') p += 1 + strspn(p + 1, " ");
            }
            snprintf(out, size, "%s", p);
        }
    }
    fclose(f);
}

void calm_print_user_commands(FILE *out)
{
    struct names s;
    char dir[4096], path[4096], summary[120];
    int i, any = 0;
    s.n = 0;
    for (i = 0; calm_script_dir(i, dir, sizeof dir); i++) scan_dir(dir, "", 0, &s);
    qsort(s.v, (size_t)s.n, sizeof s.v[0], cmp_name);
    for (i = 0; i < s.n; i++) {
        const char *rel = s.v[i];
        char name[64];
        size_t n = strlen(rel);
        if (strncmp(rel, "commands/", 9) == 0 && !strchr(rel + 9, '/') && n - 13 < sizeof name &&
            find_override(rel, path, sizeof path)) {
            snprintf(name, sizeof name, "%.*s", (int)(n - 13), rel + 9);
            summary_of(path, name, summary, sizeof summary);
            if (!any++) fputs("\nyour commands (CALMBIND_PATH, $XDG_CONFIG_HOME/calmbind/scripts):\n", out);
            fprintf(out, "  %-10s %s%s(%s%s)\n", name, summary, *summary ? " " : "", path,
                    calm_find_embedded(rel) ? ", overrides the built-in command" : "");
        }
        free(s.v[i]);
    }
}
