/* tls.c - OpenSSL contexts for TLS listeners and the TLS transport.
 *
 * One context per group of certificates with the same names (an RSA and an
 * ECDSA certificate for one name share a context, and OpenSSL picks by the
 * client's signature algorithms). The first group is the default and the
 * "session context": the SNI callback moves a connection to its group's
 * context, while session tickets and the session cache stay on the default,
 * so resumption works across names and across workers (one process, one
 * cache, one ticket key ring). */
#include "net/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/common.h"

atomic_ulong tls_handshakes_total, tls_handshake_failures_total;
bool tls_h2_enabled;

/* Mozilla "intermediate" TLS 1.2 suites without DHE (forward-secret AEAD only). */
#define TLS12_CIPHERS                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                        \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                        \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* TLS 1.3 suites are all AEAD; Mozilla's order puts AES-128 first, which
 * OpenSSL's default (AES-256 first) does not: as strong in practice, and
 * fewer rounds per record for both ends. */
#define TLS13_CIPHERS "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

#define MAX_NAMES 64

struct cert_group {
    SSL_CTX *ctx;
    char *names[MAX_NAMES]; /* lowercase DNS names (SANs, else the CN) */
    size_t n_names;
    int key_types[2];
    size_t n_keys;
    X509 *leaf[2];
    unsigned char *ocsp[2];
    size_t ocsp_len[2];
};

struct tls_ctxs {
    const struct conf_tls *conf;
    struct cert_group *groups;
    size_t n_groups;
    unsigned char alpn[32]; /* server preference, wire format */
    size_t alpn_len;
};

/* ---- session ticket keys (shared by every listener and worker) ---- */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

static struct {
    pthread_rwlock_t lock;
    struct ticket_key cur, prev;
    int have_prev;
    int ready;
} tk = {.lock = PTHREAD_RWLOCK_INITIALIZER};

static void ticket_key_new(struct ticket_key *k)
{
    if (RAND_bytes((unsigned char *)k, sizeof(*k)) != 1)
        BUG_ON(1);
}

void tls_rotate_ticket_keys(void)
{
    pthread_rwlock_wrlock(&tk.lock);
    if (tk.ready) {
        tk.prev = tk.cur;
        tk.have_prev = 1;
    }
    ticket_key_new(&tk.cur);
    tk.ready = 1;
    pthread_rwlock_unlock(&tk.lock);
}

static int ticket_key_cb(SSL *s, unsigned char key_name[16], unsigned char *iv,
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    (void)s;
    struct ticket_key k;
    int rc = 1;
    pthread_rwlock_rdlock(&tk.lock);
    if (enc) {
        k = tk.cur;
    } else if (memcmp(key_name, tk.cur.name, 16) == 0) {
        k = tk.cur;
    } else if (tk.have_prev && memcmp(key_name, tk.prev.name, 16) == 0) {
        k = tk.prev;
        rc = 2; /* valid, but issue a ticket under the current key */
    } else {
        rc = 0;
    }
    pthread_rwlock_unlock(&tk.lock);
    if (rc == 0)
        return 0;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (enc) {
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
        memcpy(key_name, k.name, 16);
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            return -1;
    } else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        return -1;
    }
    if (EVP_MAC_init(hctx, k.hmac, sizeof(k.hmac), params) != 1)
        return -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* ---- errors ---- */

static void add_err(struct conf_errors *errs, const char *conf_name, unsigned line,
                    unsigned col, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add_err(struct conf_errors *errs, const char *conf_name, unsigned line,
                    unsigned col, const char *fmt, ...)
{
    char msg[1024], ossl[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, ossl, sizeof(ossl));
    ERR_clear_error();
    size_t n = strlen(conf_name) + strlen(msg) + strlen(ossl) + 64;
    char *full = xmalloc(n);
    snprintf(full, n, "%s:%u:%u: %s%s%s", conf_name, line, col, msg, ossl[0] ? ": " : "",
             ossl);
    errs->msgs = xrealloc(errs->msgs, (errs->n + 1) * sizeof(char *));
    errs->msgs[errs->n++] = full;
}

/* ---- certificates ---- */

/* Reads the first certificate of a PEM file; on failure *why says why. */
static X509 *read_leaf(const char *path, const char **why)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    *why = "not a PEM certificate";
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

static size_t cert_names(X509 *x, char **out, size_t max)
{
    size_t n = 0;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans) && n < max; i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
            if (g->type != GEN_DNS)
                continue;
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int len = ASN1_STRING_length(g->d.dNSName);
            if (len <= 0 || memchr(d, 0, (size_t)len))
                continue;
            out[n] = xstrndup((const char *)d, (size_t)len);
            lower(out[n++]);
        }
        GENERAL_NAMES_free(sans);
    }
    if (n == 0) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                      sizeof(cn)) > 0) {
            out[n] = xstrdup(cn);
            lower(out[n++]);
        }
    }
    return n;
}

static int same_names(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++) {
        size_t j = 0;
        while (j < nb && strcmp(a[i], b[j]) != 0)
            j++;
        if (j == nb)
            return 0;
    }
    return 1;
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= (1u << 20))
                break; /* an OCSP response is a few KiB */
            cap = cap ? cap * 2 : 4096;
            buf = xrealloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* ---- callbacks ---- */

static int ctxs_index = -1;

int tls_name_matches(const char *pattern, const char *host)
{
    if (strcmp(pattern, host) == 0)
        return 2;
    /* "*.example.com" covers exactly one label (RFC 6125 §6.4.3). */
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(host, '.');
        if (dot && dot != host && strcmp(dot, pattern + 1) == 0)
            return 1;
    }
    return 0;
}

static int servername_cb(SSL *s, int *alert, void *arg)
{
    (void)alert;
    struct tls_ctxs *t = arg;
    const char *sni = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (!sni || !*sni)
        return SSL_TLSEXT_ERR_OK;
    char host[256];
    size_t len = strlen(sni);
    if (len >= sizeof(host))
        return SSL_TLSEXT_ERR_OK;
    memcpy(host, sni, len + 1);
    lower(host);
    if (len && host[len - 1] == '.')
        host[len - 1] = '\0';
    struct cert_group *best = NULL;
    int best_score = 0;
    for (size_t g = 0; g < t->n_groups && best_score < 2; g++) {
        for (size_t i = 0; i < t->groups[g].n_names; i++) {
            int sc = tls_name_matches(t->groups[g].names[i], host);
            if (sc > best_score) {
                best_score = sc;
                best = &t->groups[g];
                if (sc == 2)
                    break;
            }
        }
    }
    if (best && best->ctx != SSL_get_SSL_CTX(s))
        SSL_set_SSL_CTX(s, best->ctx);
    return SSL_TLSEXT_ERR_OK;
}

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)s;
    struct tls_ctxs *t = arg;
    unsigned char *o;
    if (SSL_select_next_proto(&o, outlen, t->alpn, (unsigned)t->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no common protocol (RFC 7301 §3.2) */
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static int ocsp_cb(SSL *s, void *arg)
{
    struct cert_group *g = arg;
    X509 *leaf = SSL_get_certificate(s);
    for (size_t i = 0; i < g->n_keys; i++) {
        if (g->leaf[i] && leaf && X509_cmp(g->leaf[i], leaf) == 0 && g->ocsp[i]) {
            unsigned char *copy = OPENSSL_malloc(g->ocsp_len[i]);
            if (!copy)
                return SSL_TLSEXT_ERR_NOACK;
            memcpy(copy, g->ocsp[i], g->ocsp_len[i]);
            SSL_set_tlsext_status_ocsp_resp(s, copy, (long)g->ocsp_len[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* ---- building ---- */

static void tls_ctxs_free(void *p)
{
    struct tls_ctxs *t = p;
    if (!t)
        return;
    for (size_t g = 0; g < t->n_groups; g++) {
        struct cert_group *cg = &t->groups[g];
        SSL_CTX_free(cg->ctx);
        for (size_t i = 0; i < cg->n_names; i++)
            free(cg->names[i]);
        for (size_t i = 0; i < cg->n_keys; i++) {
            X509_free(cg->leaf[i]);
            free(cg->ocsp[i]);
        }
    }
    free(t->groups);
    free(t);
}

static SSL_CTX *new_ctx(const struct conf_tls *ct, struct tls_ctxs *t)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, ct->min_version == 0x0304 ? TLS1_3_VERSION
                                                                  : TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One read() per batch of records instead of two per record (header,
     * then body); the transport reads until WANT_READ, so nothing is left
     * behind in OpenSSL's buffer. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
    SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERS);
    SSL_CTX_set_max_early_data(ctx, 0);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"portico", 7);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, t);
    SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, t);
    SSL_CTX_set_ex_data(ctx, ctxs_index, t);
    if (ct->resumption) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, 20480);
        SSL_CTX_set_timeout(ctx, 3600);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    return ctx;
}

static int setup_client_ca(SSL_CTX *ctx, const struct conf_tls *ct)
{
    if (!ct->client_ca)
        return 0;
    if (SSL_CTX_load_verify_locations(ctx, ct->client_ca, NULL) != 1)
        return -1;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ct->client_ca);
    if (!names)
        return -1;
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
    return 0;
}

static int build_one(struct conf_listener *l, const char *cn, struct conf_errors *errs)
{
    struct conf_tls *ct = l->tls;
    struct tls_ctxs *t = xcalloc(1, sizeof(*t));
    t->conf = ct;
    t->groups = xcalloc(ct->n_certs ? ct->n_certs : 1, sizeof(*t->groups));
    /* ALPN in server preference order (wire format: length-prefixed). h2 is
     * offered only once the HTTP/2 codec exists (tls_h2_enabled). */
    if (ct->alpn_h2 && ct->alpn_h2_first && tls_h2_enabled) {
        memcpy(t->alpn + t->alpn_len, "\x02h2", 3);
        t->alpn_len += 3;
    }
    if (ct->alpn_http11) {
        memcpy(t->alpn + t->alpn_len, "\x08http/1.1", 9);
        t->alpn_len += 9;
    }
    if (ct->alpn_h2 && !ct->alpn_h2_first && tls_h2_enabled) {
        memcpy(t->alpn + t->alpn_len, "\x02h2", 3);
        t->alpn_len += 3;
    }
    int failed = 0;
    for (size_t i = 0; i < ct->n_certs; i++) {
        const struct conf_tls_cert *cc = &ct->certs[i];
        if (!cc->cert || !cc->key)
            continue;
        const char *why = NULL;
        X509 *leaf = read_leaf(cc->cert, &why);
        if (!leaf) {
            ERR_clear_error();
            add_err(errs, cn, cc->line, cc->col, "certificate '%s': cannot read: %s", cc->cert,
                    why);
            failed = 1;
            continue;
        }
        char *names[MAX_NAMES];
        size_t nn = cert_names(leaf, names, MAX_NAMES);
        int ktype = EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
        struct cert_group *g = NULL;
        for (size_t k = 0; k < t->n_groups; k++) {
            struct cert_group *cg = &t->groups[k];
            if (same_names(cg->names, cg->n_names, names, nn) && cg->n_keys == 1 &&
                cg->key_types[0] != ktype) {
                g = cg;
                break;
            }
        }
        if (!g) {
            g = &t->groups[t->n_groups++];
            g->ctx = new_ctx(ct, t);
            memcpy(g->names, names, nn * sizeof(char *));
            g->n_names = nn;
            if (!g->ctx || setup_client_ca(g->ctx, ct) < 0) {
                add_err(errs, cn, ct->ca_line ? ct->ca_line : ct->line,
                        ct->ca_line ? ct->ca_col : ct->col, "client_ca '%s': cannot load",
                        ct->client_ca ? ct->client_ca : "");
                failed = 1;
            }
        } else {
            for (size_t k = 0; k < nn; k++)
                free(names[k]);
        }
        if (SSL_CTX_use_certificate_chain_file(g->ctx, cc->cert) != 1) {
            add_err(errs, cn, cc->line, cc->col, "certificate '%s': cannot load", cc->cert);
            X509_free(leaf);
            failed = 1;
            continue;
        }
        /* Check the pair first: OpenSSL's own loader reports a mismatch of
         * same-type keys only as a generic load failure. */
        FILE *kf = fopen(cc->key, "r");
        EVP_PKEY *pkey = kf ? PEM_read_PrivateKey(kf, NULL, NULL, NULL) : NULL;
        if (kf)
            fclose(kf);
        if (!pkey) {
            const char *kwhy = kf ? "not a PEM private key" : strerror(errno);
            ERR_clear_error();
            add_err(errs, cn, cc->line, cc->col, "key '%s': cannot read: %s", cc->key, kwhy);
            X509_free(leaf);
            failed = 1;
            continue;
        }
        int match = X509_check_private_key(leaf, pkey);
        ERR_clear_error();
        if (match != 1) {
            add_err(errs, cn, cc->line, cc->col, "key '%s' does not match certificate '%s'",
                    cc->key, cc->cert);
            EVP_PKEY_free(pkey);
            X509_free(leaf);
            failed = 1;
            continue;
        }
        int used = SSL_CTX_use_PrivateKey(g->ctx, pkey);
        EVP_PKEY_free(pkey);
        if (used != 1) {
            add_err(errs, cn, cc->line, cc->col, "key '%s': cannot load", cc->key);
            X509_free(leaf);
            failed = 1;
            continue;
        }
        if (SSL_CTX_check_private_key(g->ctx) != 1) {
            add_err(errs, cn, cc->line, cc->col, "key '%s' does not match certificate '%s'",
                    cc->key, cc->cert);
            X509_free(leaf);
            failed = 1;
            continue;
        }
        size_t slot = g->n_keys++;
        g->key_types[slot] = ktype;
        g->leaf[slot] = leaf;
        if (cc->ocsp) {
            g->ocsp[slot] = read_file(cc->ocsp, &g->ocsp_len[slot]);
            if (!g->ocsp[slot] || g->ocsp_len[slot] == 0) {
                add_err(errs, cn, cc->line, cc->col, "ocsp '%s': cannot read", cc->ocsp);
                failed = 1;
            } else {
                SSL_CTX_set_tlsext_status_cb(g->ctx, ocsp_cb);
                SSL_CTX_set_tlsext_status_arg(g->ctx, g);
            }
        }
    }
    if (failed || t->n_groups == 0) {
        if (!failed)
            add_err(errs, cn, ct->line, ct->col, "no usable certificate");
        tls_ctxs_free(t);
        return -1;
    }
    ct->ctx = t;
    ct->ctx_free = tls_ctxs_free;
    return 0;
}

/* ---- upstream (client) contexts ---- */

static int client_ex_index = -1;

static void client_ctx_free(void *p)
{
    SSL_CTX_free(p);
}

/* TLS 1.3 tickets arrive after the handshake: hand them to the connection's
 * owner (its session slot), which keeps one per server for the pool. */
static int client_new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = SSL_get_ex_data(ssl, client_ex_index);
    if (!slot)
        return 0;
    if (*slot)
        SSL_SESSION_free(*slot);
    *slot = sess;
    return 1; /* we keep the reference */
}

static int build_upstream(struct conf_upstream *u, const char *cn, struct conf_errors *errs)
{
    struct conf_upstream_tls *ut = u->tls;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        add_err(errs, cn, ut->line, ut->col, "upstream '%s': tls: cannot create context", u->name);
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* One read() per batch of records instead of two per record (header,
     * then body); the transport reads until WANT_READ, so nothing is left
     * behind in OpenSSL's buffer. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
    SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, client_new_session_cb);
    int rc = 0;
    if (ut->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ut->ca ? SSL_CTX_load_verify_locations(ctx, ut->ca, NULL)
                        : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            add_err(errs, cn, ut->line, ut->col, "upstream '%s': tls ca '%s': cannot load",
                    u->name, ut->ca ? ut->ca : "(system store)");
            rc = -1;
        }
    }
    if (ut->cert && ut->key) {
        if (SSL_CTX_use_certificate_chain_file(ctx, ut->cert) != 1) {
            add_err(errs, cn, ut->line, ut->col, "upstream '%s': tls cert '%s': cannot load",
                    u->name, ut->cert);
            rc = -1;
        } else if (SSL_CTX_use_PrivateKey_file(ctx, ut->key, SSL_FILETYPE_PEM) != 1 ||
                   SSL_CTX_check_private_key(ctx) != 1) {
            add_err(errs, cn, ut->line, ut->col,
                    "upstream '%s': tls key '%s' cannot be loaded or does not match '%s'",
                    u->name, ut->key, ut->cert);
            rc = -1;
        }
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return -1;
    }
    ut->ctx = ctx;
    ut->ctx_free = client_ctx_free;
    return 0;
}

int tls_build_listeners(struct conf *c, const char *conf_name, struct conf_errors *errs)
{
    if (client_ex_index < 0)
        client_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (ctxs_index < 0)
        ctxs_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    pthread_rwlock_rdlock(&tk.lock);
    int ready = tk.ready;
    pthread_rwlock_unlock(&tk.lock);
    if (!ready)
        tls_rotate_ticket_keys();
    int rc = 0;
    for (size_t i = 0; i < c->n_listeners; i++) {
        struct conf_listener *l = &c->listeners[i];
        if (l->tls && !l->tls->ctx && build_one(l, conf_name, errs) < 0)
            rc = -1;
    }
    for (size_t i = 0; i < c->n_upstreams; i++) {
        struct conf_upstream *u = &c->upstreams[i];
        if (u->tls && !u->tls->ctx && build_upstream(u, conf_name, errs) < 0)
            rc = -1;
    }
    return rc;
}

/* ---- transport ---- */

static ssize_t tls_map_err(SSL *ssl, int ret, bool writing)
{
    int e = SSL_get_error(ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return writing ? IO_WANT_READ : IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        return writing ? IO_AGAIN : IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return IO_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno == 0 ? IO_EOF : IO_ERROR;
    default:
        ERR_clear_error();
        return IO_ERROR;
    }
}

static void count_handshake(struct xport *x, SSL *ssl, ssize_t r)
{
    if (x->hs_counted)
        return;
    if (SSL_is_init_finished(ssl)) {
        x->hs_counted = true;
        atomic_fetch_add_explicit(&tls_handshakes_total, 1, memory_order_relaxed);
    } else if (r == IO_ERROR || r == IO_EOF) {
        x->hs_counted = true;
        atomic_fetch_add_explicit(&tls_handshake_failures_total, 1, memory_order_relaxed);
    }
}

static ssize_t tls_read(struct xport *x, void *p, size_t n)
{
    SSL *ssl = x->ssl;
    size_t got = 0;
    int ret = SSL_read_ex(ssl, p, n, &got);
    ssize_t r = ret == 1 ? (ssize_t)got : tls_map_err(ssl, ret, false);
    count_handshake(x, ssl, r);
    return r;
}

#define TLS_GATHER 16384
static __thread unsigned char gather_buf[TLS_GATHER];

/* One SSL_write of up to TLS_GATHER bytes starting at byte `skip` of the
 * iovecs: small pieces are gathered into one record, a large piece goes as it
 * is. On a retry after WANT_WRITE the same bytes are gathered again (the
 * caller consumes nothing until a write succeeds), so OpenSSL sees the same
 * data it was given first. */
static int tls_write_some(SSL *ssl, const struct iovec *iov, int n, size_t skip, size_t *wrote)
{
    int i = 0;
    while (i < n && skip >= iov[i].iov_len)
        skip -= iov[i++].iov_len;
    if (i == n) {
        *wrote = 0;
        return 1;
    }
    const char *p = (const char *)iov[i].iov_base + skip;
    size_t len = iov[i].iov_len - skip;
    if (len < TLS_GATHER && i + 1 < n) {
        size_t g = 0;
        for (; i < n && g < TLS_GATHER; i++, skip = 0) {
            size_t k = MIN(iov[i].iov_len - skip, TLS_GATHER - g);
            memcpy(gather_buf + g, (const char *)iov[i].iov_base + skip, k);
            g += k;
        }
        p = (const char *)gather_buf;
        len = g;
    }
    return SSL_write_ex(ssl, p, len, wrote);
}

/* Writes as much of the iovecs as the socket takes: OpenSSL's partial-write
 * mode returns after each record, and a short count must keep meaning "the
 * socket is full" to the caller. */
static ssize_t tls_writev(struct xport *x, const struct iovec *iov, int n)
{
    SSL *ssl = x->ssl;
    size_t total = 0, want = 0;
    for (int i = 0; i < n; i++)
        want += iov[i].iov_len;
    while (total < want) {
        size_t wrote = 0;
        int ret = tls_write_some(ssl, iov, n, total, &wrote);
        if (ret != 1) {
            ssize_t r = tls_map_err(ssl, ret, true);
            count_handshake(x, ssl, r);
            return total ? (ssize_t)total : r;
        }
        total += wrote;
    }
    count_handshake(x, ssl, (ssize_t)total);
    return (ssize_t)total;
}

static void tls_close(struct xport *x)
{
    SSL *ssl = x->ssl;
    if (ssl) {
        if (SSL_is_init_finished(ssl))
            SSL_shutdown(ssl); /* one non-blocking close_notify, best effort */
        ERR_clear_error();
        SSL_free(ssl);
        x->ssl = NULL;
    }
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
}

static const struct xport_ops xport_tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .close = tls_close,
};

int xport_init_tls(struct xport *x, int fd, const struct conf_tls *t)
{
    const struct tls_ctxs *ctxs = t->ctx;
    SSL *ssl = SSL_new(ctxs->groups[0].ctx);
    if (!ssl)
        return -1;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return -1;
    }
    SSL_set_accept_state(ssl);
    x->ops = &xport_tls_ops;
    x->fd = fd;
    x->short_read_drains = false;
    x->hs_counted = false;
    x->ssl = ssl;
    return 0;
}

const char *tls_alpn(const struct xport *x)
{
    if (!x->ssl)
        return NULL;
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(x->ssl, &p, &len);
    if (len == 2 && memcmp(p, "h2", 2) == 0)
        return "h2";
    if (len == 8 && memcmp(p, "http/1.1", 8) == 0)
        return "http/1.1";
    return NULL;
}

int tls_handshake_done(const struct xport *x)
{
    return x->ssl && SSL_is_init_finished(x->ssl);
}

size_t tls_client_subject(const struct xport *x, char *out, size_t cap)
{
    if (!x->ssl || cap == 0)
        return 0;
    X509 *peer = SSL_get0_peer_certificate(x->ssl);
    if (!peer || SSL_get_verify_result(x->ssl) != X509_V_OK)
        return 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return 0;
    X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    size_t len = n > 0 ? MIN((size_t)n, cap) : 0;
    memcpy(out, data, len);
    BIO_free(b);
    return len;
}

/* ---- upstream connections ---- */

int xport_init_tls_client(struct xport *x, int fd, const struct conf_upstream_tls *ut,
                          const char *host, SSL_SESSION **session_slot)
{
    SSL *ssl = SSL_new(ut->ctx);
    if (!ssl)
        return -1;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return -1;
    }
    SSL_set_connect_state(ssl);
    const char *name = ut->sni ? ut->sni : host;
    unsigned char ipbuf[16];
    bool is_ip = inet_pton(AF_INET, name, ipbuf) == 1 || inet_pton(AF_INET6, name, ipbuf) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(ssl, name); /* no SNI for IP literals (RFC 6066 §3) */
    if (ut->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(vp, name);
        else
            X509_VERIFY_PARAM_set1_host(vp, name, 0);
    }
    if (session_slot) {
        SSL_set_ex_data(ssl, client_ex_index, session_slot);
        if (*session_slot)
            SSL_set_session(ssl, *session_slot);
    }
    x->ops = &xport_tls_ops;
    x->fd = fd;
    x->short_read_drains = false;
    x->hs_counted = true; /* client handshakes are not in the listener counters */
    x->ssl = ssl;
    return 0;
}

int tls_handshake(struct xport *x, char *err, size_t errlen)
{
    SSL *ssl = x->ssl;
    int ret = SSL_do_handshake(ssl);
    if (ret == 1)
        return 0;
    int e = SSL_get_error(ssl, ret);
    if (e == SSL_ERROR_WANT_READ)
        return IO_AGAIN;
    if (e == SSL_ERROR_WANT_WRITE)
        return IO_WANT_WRITE;
    long vr = SSL_get_verify_result(ssl);
    unsigned long oe = ERR_peek_last_error();
    if (vr != X509_V_OK)
        snprintf(err, errlen, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    else if (oe)
        ERR_error_string_n(oe, err, errlen);
    else
        snprintf(err, errlen, "handshake failed (%s)", e == SSL_ERROR_SYSCALL ? "connection closed"
                                                                               : "protocol error");
    ERR_clear_error();
    return IO_ERROR;
}

void tls_detach_session_slot(struct xport *x)
{
    if (x->ssl)
        SSL_set_ex_data(x->ssl, client_ex_index, NULL);
}

int tls_idle_check(struct xport *x)
{
    unsigned char b;
    size_t got = 0;
    int ret = SSL_read_ex(x->ssl, &b, 1, &got);
    if (ret == 1)
        return -1; /* data on an idle connection: unusable */
    int e = SSL_get_error(x->ssl, ret);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ ? 0 : -1;
}

void tls_session_free(void *session)
{
    if (session)
        SSL_SESSION_free(session);
}

void tls_offer_session(struct xport *x, void *session)
{
    if (x->ssl && session)
        SSL_set_session(x->ssl, session);
}
