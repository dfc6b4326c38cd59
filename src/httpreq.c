/* httpreq.c: the settings of one calm.http transfer: which URLs may be
 * fetched, TLS (verification always on, mTLS from memory), the method and
 * body, timeouts, no redirects. No Lua here: lhttp.c reads the options. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

#define SYSTEM_CA_PATH "/etc/ssl/certs"

const char *calm_http_check_url(const char *url, int *plain_loopback)
{
    calm_url u;
    const char *why = NULL;
    *plain_loopback = 0;
    if (calm_url_parse(url, 0, &u, &why) != 0) return why;
    if (strcmp(u.scheme, "https") == 0) {
        why = NULL;
    } else if (strcmp(u.scheme, "http") == 0) {
        if (u.loopback) *plain_loopback = 1;
        else why = "plain http is only allowed to loopback hosts; use https";
    } else {
        why = "only https URLs are allowed";
    }
    calm_url_free(&u);
    return why;
}

int calm_http_set_tls(request *r, const char *cacert, const char *cert, size_t certlen,
                      const char *key, size_t keylen)
{
    CURL *e = r->t.easy;
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (cacert) {   /* in addition to the system store, which stays as CAPATH */
        curl_easy_setopt(e, CURLOPT_CAINFO, cacert);
        curl_easy_setopt(e, CURLOPT_CAPATH, SYSTEM_CA_PATH);
    }
    if (cert && key) {
        /* Our own copies, wiped when the request ends; libcurl would free its
         * copies of the private key without wiping them. */
        struct curl_blob cb, kb;
        if (calm_buf_append(&r->cert, cert, certlen) || calm_buf_append(&r->key, key, keylen))
            return -1;
        cb.data = r->cert.data; cb.len = r->cert.len; cb.flags = CURL_BLOB_NOCOPY;
        kb.data = r->key.data; kb.len = r->key.len; kb.flags = CURL_BLOB_NOCOPY;
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    return 0;
}

void calm_http_set_method(request *r)
{
    CURL *e = r->t.easy;
    const char *method = r->method;
    const calm_buf *payload = &r->sent;
    if (strcmp(method, "GET") == 0 && !payload->len) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    /* libcurl re-sends a request whose reused connection died before the
     * answer. For a create that is a blind re-send, so mutations get a
     * connection of their own (the caller decides about retrying), unless
     * the caller says a second send is harmless ('reuse': a token grant, whose
     * kept connection saves a TCP and TLS handshake). */
    if ((strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0) && !r->reuse)
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (payload->len || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0) {
        /* read in place from the request's own buffer, wiped when it ends */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)payload->len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, payload->data ? payload->data : "");
    }
}

void calm_http_set_transfer(request *r, const char *url, double timeout, double connect_timeout,
                            int plain_loopback)
{
    CURL *e = r->t.easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);   /* a bearer token must not travel */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "calmbind/" CALM_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(connect_timeout * 1000));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(timeout < 30 ? ceil(timeout) : 30));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, calm_fd_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &r->socket_errno);
    if (plain_loopback) curl_easy_setopt(e, CURLOPT_PROXY, "");   /* loopback stays local */
}
