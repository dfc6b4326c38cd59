/* fs_internal.h: what fs.c (writing) and fs_read.c (reading) share: the
 * error convention of calm.h's file functions. Not for anything else. */
#ifndef FS_INTERNAL_H
#define FS_INTERNAL_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

/* Formats into err (if any) without disturbing errno. */
static inline void set_err(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static inline void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    errno = e;
}

/* close() that keeps the errno of the failure being reported. */
static inline void close_keep_errno(int fd)
{
    int e = errno;
    close(fd);
    errno = e;
}

#endif
