/* src/api/http.h: the API's HTTP/1.1 server: libmicrohttpd driven by the control
 * thread's epoll loop (no thread of its own, no thread per request).
 *
 * http.c reads a whole request (at most HTTP_MAX_BODY bytes of body), hands it to
 * one handler as a struct http_req, and sends back the JSON the handler puts in
 * struct http_resp with Content-Type application/json. Bodies over the limit are
 * answered 413 by http.c itself, before the handler sees anything. */
#ifndef API_HTTP_H
#define API_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define HTTP_MAX_BODY (1024 * 1024)
#define HTTP_MAX_QUERY 32
#define HTTP_TIMEOUT_S 30 /* an idle client connection is closed after this */
#define HTTP_MAX_CONNS 256

struct loop;
struct http_server;

struct http_query {
    const char *key;
    const char *value; /* "" for "?key" without '=' */
};

/* Everything is borrowed and valid only during the handler call. */
struct http_req {
    const char *method;        /* "GET" */
    const char *path;          /* percent-decoded, without the query */
    const char *authorization; /* the Authorization header; NULL when absent */
    struct http_query query[HTTP_MAX_QUERY];
    size_t n_query;
    bool has_too_many_query; /* more than HTTP_MAX_QUERY arguments were sent */
    const char *body;        /* NUL-terminated copy of the body ("" when none) */
    size_t body_len;
};

struct http_resp {
    unsigned status;          /* HTTP status */
    json_t *body;             /* owned: serialized and freed by the server */
    char *text;               /* owned (malloc): sent instead of <body> when set */
    const char *content_type; /* of <text>; static */
};

/* Fills <resp>; never NULL body on return. Runs on the loop's thread. */
typedef void (*http_handler_fn)(void *ctx, const struct http_req *req, struct http_resp *resp);

/* Binds <addr>, and serves it from <loop>. Returns NULL with a reason in <err>
 * (bind errors name the address). */
struct http_server *http_start(struct loop *loop, const struct sockaddr_storage *addr,
                               http_handler_fn fn, void *ctx, char *err, size_t errlen);

/* Closes every connection and the listening socket. NULL is fine. */
void http_stop(struct http_server *srv);

/* The value of query argument <key>, or NULL; *<count> (may be NULL) is set to
 * how many times it appears. */
const char *http_query_get(const struct http_req *req, const char *key, int *count);

#endif
