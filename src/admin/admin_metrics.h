/* admin_metrics.h - the admin API's observability pages: GET /metrics
 * (Prometheus text exposition format 0.0.4), GET /dashboard (a
 * self-contained HTML page) and GET /dashboard/data (the JSON it polls).
 * They read the summed per-worker counters (log/metrics.h), the history
 * ring, the running snapshot and the shared server states; nothing here
 * touches a worker. */
#ifndef PORTICO_ADMIN_ADMIN_METRICS_H
#define PORTICO_ADMIN_ADMIN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "http/msg.h"

/* An answer for admin.c to send. */
struct admin_reply {
    int status;
    const char *content_type;
    const char *extra; /* more header lines ("Name: value\r\n"...), or NULL */
    char *body;        /* malloc'd (the caller frees it) */
    size_t len;
};

/* Answers rq when its path is one of ours (/metrics, /dashboard,
 * /dashboard/data): fills *r and returns true. Only GET and HEAD are
 * allowed (else 405). The page itself holds no data and is served to
 * anyone who can reach the admin listener, so that a browser can open it
 * and then send the bearer token on its polls; /metrics and
 * /dashboard/data answer 401 unless `authorized`. admin.c calls it before
 * its own token check. Admin thread. */
struct admin;
bool admin_metrics_route(struct admin *a, const struct http_request *rq, bool authorized,
                         struct admin_reply *r);

/* The Prometheus document (NUL-terminated, malloc'd). Any thread. */
char *admin_metrics_text(const struct conf *c, size_t *len);
/* The dashboard's data: history, totals, workers, routes and servers. */
char *admin_dashboard_json(const struct conf *c, size_t *len);

/* dashboard_html.c: the page. */
extern const char admin_dashboard_html[];
extern const size_t admin_dashboard_html_len;

#endif
