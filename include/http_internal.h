/* http_internal.h: one calm.http request, shared by the binding (lhttp.c),
 * the transfer's settings (httpreq.c) and the answer's side (httpresp.c).
 * Not for anything else. */
#ifndef HTTP_INTERNAL_H
#define HTTP_INTERNAL_H

#include <lua.h>
#include "calm_lua.h"

#define METHOD_MAX 16

typedef struct request {
    calm_transfer t;           /* first: the scheduler sees this part */
    lua_State *main;           /* for unref from the scheduler's side */
    int anchor;                /* registry ref while in flight */
    struct curl_slist *headers;
    calm_buf body;             /* response body */
    calm_buf head;             /* response header lines, for --trace */
    calm_buf sent;             /* request body: built here (the GC owns it if a
                                * check raises); libcurl reads it in place */
    calm_buf cert, key;        /* mTLS PEM, handed to libcurl without a copy */
    size_t max_body;
    int too_large;
    int head_lines;            /* header lines of the current response */
    int bad_head;              /* header block refused: 1 too many lines, 2 too large */
    size_t received;           /* header and body bytes so far */
    double first_byte;         /* calm_now() at the first byte of the answer */
    double trickled;           /* seconds it took, when cut for trickling */
    double started;
    int socket_errno;          /* why socket() failed, if it did */
    int reuse;                 /* 'reuse': a POST/PATCH that may go on a kept connection */
    char method[METHOD_MAX];   /* upper case */
    char *url;
    char errbuf[CURL_ERROR_SIZE];
} request;

/* ---- httpreq.c: the easy handle's settings --------------------------------- */
/* NULL if the URL may be fetched, else why not. *plain_loopback is set for
 * http:// to loopback (those must never go through a proxy). */
const char *calm_http_check_url(const char *url, int *plain_loopback);
/* Peer verification always on; cacert (the request's, else the host's
 * default: --cacert, CALMBIND_CACERT, SSL_CERT_FILE, CURL_CA_BUNDLE) adds to
 * the system store; cert and key (both or neither) for mTLS. 0, or -1 out of
 * memory. */
int calm_http_set_tls(request *r, const char *cacert, const char *cert, size_t certlen,
                      const char *key, size_t keylen);
/* r->method with r->sent as the body, if any. */
void calm_http_set_method(request *r);
/* URL, protocols, no redirects, timeouts, headers, the socket opener. */
void calm_http_set_transfer(request *r, const char *url, double timeout, double connect_timeout,
                            int plain_loopback);

/* ---- httpresp.c: receiving the answer -------------------------------------- */
/* The write, header and progress callbacks with their limits (max_body,
 * header lines and bytes, the trickle floor). */
void calm_http_set_receive(request *r);
/* calm_transfer.finish and .abandon of a request. */
int calm_http_finish(calm_transfer *t, lua_State *co, CURLcode rc);
void calm_http_abandon(calm_transfer *t);
/* Frees everything the request holds, wiping its buffers; idempotent. */
void calm_http_release(request *r);

#endif
