/* conf_tls.c - the `listeners[].tls` section: certificates, protocol floor,
 * ALPN, resumption and client certificates, checked and stored as settings.
 * Files are not opened here (net/tls.c does that when it builds the contexts),
 * so validating a document never touches the file system. */
#include <stdlib.h>
#include <string.h>

#include "conf/conf_schema.h"
#include "core/common.h"

/* A relative path is taken against the directory of the config file, so a
 * config can be moved together with its certificates (and its cache). */
char *conf_resolve_path(const struct conf_ctx *cx, const char *p)
{
    const char *slash = cx->file ? strrchr(cx->file, '/') : NULL;
    if (p[0] == '/' || !slash)
        return xstrdup(p);
    size_t dl = (size_t)(slash - cx->file) + 1, pl = strlen(p);
    char *out = xmalloc(dl + pl + 1);
    memcpy(out, cx->file, dl);
    memcpy(out + dl, p, pl + 1);
    return out;
}

static void build_cert(struct conf_ctx *cx, struct conf_tls_cert *c, const struct cnode *n)
{
    static const char *const keys[] = {"cert", "key", "ocsp", NULL};
    const struct cnode *v;
    const char *s;

    c->line = n->line;
    c->col = n->col;
    if (!sch_map(cx, n))
        return;
    sch_keys(cx, n, "certificate", keys, NULL);
    if ((v = sch_require(cx, n, "cert", "certificate")) && sch_nonempty(cx, v, &s))
        c->cert = conf_resolve_path(cx, s);
    if ((v = sch_require(cx, n, "key", "certificate")) && sch_nonempty(cx, v, &s))
        c->key = conf_resolve_path(cx, s);
    if ((v = cnode_map_get(n, "ocsp")) && !cnode_is_null(v) && sch_nonempty(cx, v, &s))
        c->ocsp = conf_resolve_path(cx, s);
}

static void build_alpn(struct conf_ctx *cx, struct conf_tls *t, const struct cnode *n)
{
    static const char *const protos[] = {"h2", "http/1.1", NULL};
    if (!sch_seq(cx, n))
        return;
    if (n->n == 0) {
        conf_err(cx, n, "'alpn' must not be empty");
        return;
    }
    t->alpn_h2 = t->alpn_http11 = t->alpn_h2_first = false;
    for (size_t i = 0; i < n->n; i++) {
        unsigned p;
        if (!sch_enum(cx, n->kids[i], "alpn protocol", protos, &p))
            continue;
        if (p == 0) {
            if (!t->alpn_http11)
                t->alpn_h2_first = true;
            t->alpn_h2 = true;
        } else {
            t->alpn_http11 = true;
        }
    }
}

struct conf_tls *conf_build_tls(struct conf_ctx *cx, const struct cnode *n)
{
    static const char *const keys[] = {"certificates", "min_version", "alpn", "resumption",
                                       "client_ca", NULL};
    static const char *const versions[] = {"tls1.2", "tls1.3", NULL};
    const struct cnode *v;
    const char *s;

    if (!sch_map(cx, n))
        return NULL;
    struct conf_tls *t = xcalloc(1, sizeof(*t));
    t->line = n->line;
    t->col = n->col;
    t->min_version = 0x0303;
    t->alpn_h2 = t->alpn_http11 = t->alpn_h2_first = true;
    t->resumption = true;
    sch_keys(cx, n, "tls", keys, NULL);
    if ((v = sch_require(cx, n, "certificates", "tls")) && sch_seq(cx, v)) {
        if (v->n == 0)
            conf_err(cx, v, "'certificates' must not be empty");
        t->certs = xcalloc(v->n ? v->n : 1, sizeof(*t->certs));
        t->n_certs = v->n;
        for (size_t i = 0; i < v->n; i++)
            build_cert(cx, &t->certs[i], v->kids[i]);
    }
    unsigned ver;
    if ((v = cnode_map_get(n, "min_version")) && sch_enum(cx, v, "min_version", versions, &ver))
        t->min_version = ver ? 0x0304 : 0x0303;
    if ((v = cnode_map_get(n, "alpn")))
        build_alpn(cx, t, v);
    if ((v = cnode_map_get(n, "resumption")))
        sch_bool(cx, v, &t->resumption);
    if ((v = cnode_map_get(n, "client_ca")) && !cnode_is_null(v) && sch_nonempty(cx, v, &s)) {
        t->client_ca = conf_resolve_path(cx, s);
        t->ca_line = v->line;
        t->ca_col = v->col;
    }
    return t;
}

void conf_tls_free(struct conf_tls *t)
{
    if (!t)
        return;
    if (t->ctx && t->ctx_free)
        t->ctx_free(t->ctx);
    for (size_t i = 0; i < t->n_certs; i++) {
        free(t->certs[i].cert);
        free(t->certs[i].key);
        free(t->certs[i].ocsp);
    }
    free(t->certs);
    free(t->client_ca);
    free(t);
}

struct conf_upstream_tls *conf_build_upstream_tls(struct conf_ctx *cx, const struct cnode *n)
{
    static const char *const keys[] = {"verify", "ca", "sni", "cert", "key", NULL};
    const struct cnode *v;
    const char *s;
    bool on;

    if (n->type == CNODE_SCALAR) {
        if (!sch_bool(cx, n, &on) || !on)
            return NULL;
    } else if (!sch_map(cx, n)) {
        return NULL;
    }
    struct conf_upstream_tls *t = xcalloc(1, sizeof(*t));
    t->verify = true;
    t->line = n->line;
    t->col = n->col;
    if (n->type != CNODE_MAP)
        return t;
    sch_keys(cx, n, "upstream tls", keys, NULL);
    if ((v = cnode_map_get(n, "verify")))
        sch_bool(cx, v, &t->verify);
    if ((v = cnode_map_get(n, "ca")) && !cnode_is_null(v) && sch_nonempty(cx, v, &s))
        t->ca = conf_resolve_path(cx, s);
    if ((v = cnode_map_get(n, "sni")) && !cnode_is_null(v) && sch_nonempty(cx, v, &s))
        t->sni = xstrdup(s);
    if ((v = cnode_map_get(n, "cert")) && !cnode_is_null(v) && sch_nonempty(cx, v, &s))
        t->cert = conf_resolve_path(cx, s);
    if ((v = cnode_map_get(n, "key")) && !cnode_is_null(v) && sch_nonempty(cx, v, &s))
        t->key = conf_resolve_path(cx, s);
    if (!t->cert != !t->key)
        conf_err(cx, n, "upstream tls: 'cert' and 'key' go together");
    return t;
}

void conf_upstream_tls_free(struct conf_upstream_tls *t)
{
    if (!t)
        return;
    if (t->ctx && t->ctx_free)
        t->ctx_free(t->ctx);
    free(t->ca);
    free(t->sni);
    free(t->cert);
    free(t->key);
    free(t);
}
