/* lfs.c: the calm.fs Lua module: the few file operations scripts need,
 * with the safe write (fs.c) as the only way to write.
 *
 * Expected failures return nil, message, code where code is the errno name
 * ("ENOENT", "EACCES", ...) or one of ours: NOT_FILE, TOO_LARGE. Misuse (a
 * non-string path, a path with a NUL byte, a negative max) raises.
 * C-side resources (the read buffer: lbuf.c; a DIR*) live in userdata whose
 * __gc/__close releases them, so a raise halfway leaks nothing. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "calm_lua.h"

#define DIR_META "calm.fs.dir"
#define READ_MAX_DEFAULT (1024 * 1024)

/* An open directory owned by Lua: closed by __gc / __close if a call raises. */
static int dir_close(lua_State *L)
{
    DIR **d = luaL_checkudata(L, 1, DIR_META);
    if (*d) closedir(*d);
    *d = NULL;
    return 0;
}

static DIR **dir_new(lua_State *L)
{
    DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
    *d = NULL;
    calm_set_releaser(L, DIR_META, dir_close);
    return d;
}

/* Stable code for an errno: the fs.c conventions first, then the errno's
 * own name (glibc >= 2.32). */
static const char *errno_code(int e)
{
    const char *name;
    if (e == ENOTSUP)
        return "NOT_FILE";
    if (e == EFBIG)
        return "TOO_LARGE";
    name = strerrorname_np(e);
    return name ? name : "EIO";
}

/* Pushes the fail triple nil, msg, code. */
static int push_fail(lua_State *L, const char *msg, int e)
{
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, errno_code(e));
    return 3;
}

/* A path argument: a string without NUL bytes (the C calls would silently
 * cut it at the first one and act on another file). */
static const char *check_path(lua_State *L, int arg)
{
    size_t n;
    const char *p = luaL_checklstring(L, arg, &n);
    luaL_argcheck(L, strlen(p) == n, arg, "'path' must not contain NUL bytes");
    return p;
}

typedef int (*file_reader)(const char *path, size_t max, calm_buf *out, char *err, size_t errlen);

/* The body of the three readers: max at stack index max_arg (default 1 MiB),
 * read by reader into a Lua-owned buffer. */
static int push_read(lua_State *L, const char *path, int max_arg, file_reader reader)
{
    lua_Integer max = luaL_optinteger(L, max_arg, READ_MAX_DEFAULT);
    char err[512];
    calm_buf *b;

    luaL_argcheck(L, max >= 0, max_arg, "'max' must not be negative");
    b = calm_lbuf_new(L);
    if (reader(path, (size_t)max, b, err, sizeof err) != 0)
        return push_fail(L, err, errno);
    calm_lbuf_push(L, b);
    return 1;
}

/* fs.read(path [, max]) -> contents | nil, msg, code.
 * max defaults to 1 MiB; a larger file gives TOO_LARGE, anything but a
 * regular file (after following symlinks) NOT_FILE. */
static int fs_read(lua_State *L)
{
    return push_read(L, check_path(L, 1), 2, calm_read_file);
}

/* fs.read_input(path [, max]) -> contents | nil, msg, code: as fs.read, but
 * a FIFO, pipe, socket or character device is read too (to EOF or the cap:
 * /dev/fd/N, <(...), a named FIFO); a directory or terminal is NOT_FILE. */
static int fs_read_input(lua_State *L)
{
    return push_read(L, check_path(L, 1), 2, calm_read_input);
}

/* fs.read_stdin([max]) -> contents | nil, msg, code: standard input to EOF,
 * at most max bytes (default 1 MiB); a terminal is NOT_FILE. */
static int fs_read_stdin(lua_State *L)
{
    return push_read(L, NULL, 1, calm_read_input);
}

/* fs.mkdirs(path) -> true | nil, msg, code: creates the directory and its
 * missing parents, mode 0700 (what exists is left as it is). */
static int fs_mkdirs(lua_State *L)
{
    char err[512];
    if (calm_make_dirs(check_path(L, 1), err, sizeof err) != 0)
        return push_fail(L, err, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.probe_dir(dir) -> true | nil, msg, code: whether a file can be
 * created in dir (a temporary one is made and removed). */
static int fs_probe_dir(lua_State *L)
{
    char err[512];
    if (calm_probe_dir(check_path(L, 1), err, sizeof err) != 0)
        return push_fail(L, err, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.write_private(path, data) -> true | nil, msg, code.
 * Mode 0600 whatever the umask, via a temp file in the same directory,
 * fsync, rename and directory fsync: readers see the old or the new
 * content, never a mix. A symlink (or directory, FIFO...) at path is
 * refused with NOT_FILE and left alone. */
static int fs_write_private(lua_State *L)
{
    const char *path = check_path(L, 1);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    char err[512];

    if (calm_write_private(path, data, n, err, sizeof err) != 0)
        return push_fail(L, err, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.exists(path) -> boolean: whether stat succeeds (a dangling symlink
 * does not exist; a file in an unreadable directory may look absent). */
static int fs_exists(lua_State *L)
{
    struct stat st;
    lua_pushboolean(L, stat(check_path(L, 1), &st) == 0);
    return 1;
}

/* fs.same_file(a, b) -> boolean: both paths name one existing file (same
 * device and inode after following symlinks; a hard link counts too). */
static int fs_same_file(lua_State *L)
{
    struct stat sa, sb;
    const char *a = check_path(L, 1);
    const char *b = check_path(L, 2);
    lua_pushboolean(L, stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
                           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
    return 1;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* fs.list(dir) -> array of entry names sorted bytewise ("." and ".."
 * left out) | nil, msg, code. */
static int fs_list(lua_State *L)
{
    const char *path = check_path(L, 1);
    const char **names;
    struct dirent *d;
    DIR **dir;
    lua_Integer n = 0, i;

    dir = dir_new(L);
    lua_newtable(L);
    /* stack: path, dir, names-table */
    *dir = opendir(path);
    if (!*dir) {
        int e = errno;
        lua_pushfstring(L, "cannot list '%s': %s", path, strerror(e));
        return push_fail(L, lua_tostring(L, -1), e);
    }
    for (;;) {
        errno = 0;
        d = readdir(*dir);
        if (!d)
            break;
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
            continue;
        lua_pushstring(L, d->d_name);
        lua_rawseti(L, -2, ++n);
    }
    if (errno != 0) {
        int e = errno;
        lua_pushfstring(L, "cannot list '%s': %s", path, strerror(e));
        return push_fail(L, lua_tostring(L, -1), e);
    }
    closedir(*dir);
    *dir = NULL;

    /* Sort pointers to the strings, which the names table keeps alive. */
    names = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *names, 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        names[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    qsort(names, (size_t)n, sizeof *names, name_cmp);
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
        lua_pushstring(L, names[i - 1]);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* fs.isatty(name) -> boolean, name one of "stdin", "stdout", "stderr"
 * (progress lines and prompts depend on it). */
static int fs_isatty(lua_State *L)
{
    static const char *const names[] = {"stdin", "stdout", "stderr", NULL};
    int fd = luaL_checkoption(L, 1, NULL, names);
    lua_pushboolean(L, isatty(fd) == 1);
    return 1;
}

/* fs.stdtype(name) -> "terminal" | "file" | "pipe" | "other", and for a
 * regular file its permission bits; name one of "stdin", "stdout", "stderr"
 * (`get > file` on a file others can read earns a warning). */
static int fs_stdtype(lua_State *L)
{
    static const char *const names[] = {"stdin", "stdout", "stderr", NULL};
    int fd = luaL_checkoption(L, 1, NULL, names);
    struct stat st;
    if (isatty(fd) == 1) {
        lua_pushliteral(L, "terminal");
        return 1;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        lua_pushliteral(L, "file");
        lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
        return 2;
    }
    if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        lua_pushliteral(L, "pipe");
    else
        lua_pushliteral(L, "other");
    return 1;
}

/* fs.ask(prompt) -> answer | nil, msg, code: prompt written to the
 * controlling terminal (/dev/tty), one line read back from it (without the
 * newline; at most 255 bytes kept). code NO_TERMINAL: there is none (a CI
 * job, cron, ssh without -t); EOF: Ctrl-D with nothing typed. Blocks the
 * whole process (every flow) until the answer: for a person at a terminal. */
static int fs_ask(lua_State *L)
{
    size_t n;
    const char *prompt = luaL_checklstring(L, 1, &n);
    char answer[256], err[512];
    luaL_argcheck(L, strlen(prompt) == n, 1, "'prompt' must not contain NUL bytes");
    if (calm_ask(prompt, answer, sizeof answer, err, sizeof err) != 0) {
        int e = errno;
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushstring(L, e == ENOTTY ? "NO_TERMINAL" : e == ENODATA ? "EOF" : errno_code(e));
        return 3;
    }
    lua_pushstring(L, answer);
    return 1;
}

/* fs.remove(path) -> true | nil, msg, code: unlinks a file (or symlink,
 * not what it points at); a directory gives EISDIR. */
static int fs_remove(lua_State *L)
{
    const char *path = check_path(L, 1);
    if (unlink(path) != 0) {
        int e = errno;
        lua_pushfstring(L, "cannot remove '%s': %s", path, strerror(e));
        return push_fail(L, lua_tostring(L, -1), e);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg fs_funcs[] = {
    {"read", fs_read},
    {"read_input", fs_read_input},
    {"read_stdin", fs_read_stdin},
    {"mkdirs", fs_mkdirs},
    {"probe_dir", fs_probe_dir},
    {"write_private", fs_write_private},
    {"exists", fs_exists},
    {"same_file", fs_same_file},
    {"list", fs_list},
    {"isatty", fs_isatty},
    {"stdtype", fs_stdtype},
    {"remove", fs_remove},
    {"ask", fs_ask},
    {NULL, NULL}
};

int luaopen_calm_fs(lua_State *L)
{
    luaL_newlib(L, fs_funcs);
    return 1;
}
