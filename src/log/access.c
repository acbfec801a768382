/* access.c - the end of a request: its metrics (log/metrics.c) and the JSON
 * access-log line (fields as in DESIGN.md) formatted into the worker's
 * buffer. */
#include "log/access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/common.h"
#include "log/errlog.h"
#include "log/log_writer.h"
#include "log/metrics.h"
#include "proxy/engine.h"

#define ACCESS_BUF 65536
#define ACCESS_FLUSH_AT (ACCESS_BUF - 8192)

struct access_log {
    size_t len;
    char data[ACCESS_BUF];
};

struct access_log *access_log_new(void)
{
    struct access_log *al = xmalloc(sizeof(*al));
    al->len = 0;
    return al;
}

void access_log_free(struct access_log *al)
{
    if (!al)
        return;
    access_log_flush(al);
    free(al);
}

void access_log_flush(struct access_log *al)
{
    if (al && al->len) {
        log_writer_submit(al->data, al->len);
        al->len = 0;
    }
}

/* Appends s as a JSON string (quoted); bytes outside printable ASCII are
 * escaped so the line stays valid JSON whatever the client sent. */
static char *json_str(char *w, char *end, struct str s)
{
    static const char hex[] = "0123456789abcdef";
    if (w >= end - 2)
        return w;
    *w++ = '"';
    for (size_t i = 0; i < s.len && w < end - 8; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\') {
            *w++ = '\\';
            *w++ = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(w, "\\u00", 4);
            w[4] = hex[c >> 4];
            w[5] = hex[c & 15];
            w += 6;
        } else {
            *w++ = (char)c;
        }
    }
    *w++ = '"';
    return w;
}

static char *json_lit(char *w, char *end, const char *s)
{
    size_t n = strlen(s);
    if (w + n < end) {
        memcpy(w, s, n);
        w += n;
    }
    return w;
}

/* The end of every request, whether or not the access log is on: the
 * metrics first, then the log line. */
void stream_log(struct stream *st)
{
    uint64_t now_us = clock_mono_us();
    metrics_stream_end(st, now_us);
    if (st->cache_status) {
        static const uint8_t to_metric[] = {
            [CR_HIT] = MCACHE_HIT,       [CR_MISS] = MCACHE_MISS,
            [CR_STALE] = MCACHE_STALE,   [CR_BYPASS] = MCACHE_BYPASS,
            [CR_REVALIDATED] = MCACHE_REVALIDATED, [CR_EXPIRED] = MCACHE_EXPIRED};
        if (st->cache_status < ARRAY_SIZE(to_metric))
            metrics_cache(st->w->metrics, (enum metrics_cache_result)to_metric[st->cache_status]);
    }
    if (st->zalg)
        metrics_compress(st->w->metrics, (enum zalg)st->zalg, st->z_in, st->z_out);
    struct access_log *al = st->w->alog;
    if (!al)
        return;
    const struct http_request *rq = &st->req;
    char line[8192];
    char *w = line, *end = line + sizeof(line) - 2;
    char tmp[64];

    w = json_lit(w, end, "{\"time\":\"");
    size_t tl = fmt_rfc3339_ms(tmp, clock_wall_ms());
    memcpy(w, tmp, tl);
    w += tl;
    w = json_lit(w, end, "\",\"request_id\":");
    w = json_str(w, end, str_make(st->req_id, st->req_id_len));
    w = json_lit(w, end, ",\"trace_id\":");
    w = st->trace_len ? json_str(w, end, str_make(st->trace + 3, 32)) : json_lit(w, end, "null");
    w = json_lit(w, end, ",\"client_ip\":");
    w = json_str(w, end, str_make(st->client_ip, st->client_ip_len));
    w = json_lit(w, end, ",\"method\":");
    w = json_str(w, end, rq->method);
    w = json_lit(w, end, ",\"host\":");
    w = json_str(w, end, rq->authority);
    w = json_lit(w, end, ",\"path\":");
    w = json_str(w, end, rq->path);
    w = json_lit(w, end, rq->version == 10   ? ",\"protocol\":\"HTTP/1.0\""
                         : rq->version == 20 ? ",\"protocol\":\"HTTP/2.0\""
                                             : ",\"protocol\":\"HTTP/1.1\"");
    int n = snprintf(w, (size_t)(end - w),
                     ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f",
                     st->status, (unsigned long long)st->bytes_in,
                     (unsigned long long)st->bytes_out,
                     st->start_us ? (double)(now_us - st->start_us) / 1000.0 : 0.0);
    w += n > 0 && n < end - w ? n : 0;
    w = json_lit(w, end, ",\"upstream\":");
    if (st->log_server || st->up_start_us) {
        const struct conf_server *s = st->log_server;
        w = s ? json_str(w, end, str_c(s->address)) : json_lit(w, end, "null");
        double ums = st->up_end_us > st->up_start_us
                         ? (double)(st->up_end_us - st->up_start_us) / 1000.0
                         : (double)(now_us - st->up_start_us) / 1000.0;
        n = snprintf(w, (size_t)(end - w), ",\"upstream_ms\":%.3f", ums);
        w += n > 0 && n < end - w ? n : 0;
    } else {
        w = json_lit(w, end, "null,\"upstream_ms\":null");
    }
    w = json_lit(w, end, ",\"cache\":");
    const char *cres = cache_result_name(st->cache_status);
    w = cres ? json_str(w, end, str_c(cres)) : json_lit(w, end, "null");
    w = json_lit(w, end, ",\"user_agent\":");
    int ua = http_header_find(rq->headers, rq->n_headers, STR_LIT("user-agent"), 0);
    w = ua >= 0 ? json_str(w, end, rq->headers[ua].value) : json_lit(w, end, "null");
    w = json_lit(w, end, ",\"route\":");
    w = st->route ? json_str(w, end, str_c(st->route->name)) : json_lit(w, end, "null");
    if (st->cl->listener->tls && st->cl->listener->tls->client_ca) {
        /* mTLS listeners: who the verified client certificate says it is. */
        struct str subj = fwd_tmpl_var(st, TMPL_TLS_CLIENT_SUBJECT, STR_NULL);
        w = json_lit(w, end, ",\"tls_client_subject\":");
        w = subj.len ? json_str(w, end, subj) : json_lit(w, end, "null");
    }
    *w++ = '}';
    *w++ = '\n';
    size_t len = (size_t)(w - line);
    if (al->len + len > ACCESS_BUF)
        access_log_flush(al);
    memcpy(al->data + al->len, line, len);
    al->len += len;
    if (al->len >= ACCESS_FLUSH_AT)
        access_log_flush(al);
}
