/* Unit tests for net/tls.c: certificate name matching (tls_name_matches) and
 * certificate selection by SNI through real in-memory handshakes: a listener
 * built by tls_build_listeners from certificates made at test time, the
 * server side driven through its TLS transport (xport_init_tls) over a
 * socketpair, an OpenSSL client on the other end. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "net/tls.h"

/* ---- tls_name_matches ---- */

Test(tls_names, exact)
{
    cr_assert_eq(tls_name_matches("a.example.com", "a.example.com"), 2);
    cr_assert_eq(tls_name_matches("example.com", "example.com"), 2);
    cr_assert_eq(tls_name_matches("a.example.com", "b.example.com"), 0);
    cr_assert_eq(tls_name_matches("a.example.com", "a.example.co"), 0);
    cr_assert_eq(tls_name_matches("a.example.com", "aa.example.com"), 0);
    cr_assert_eq(tls_name_matches("a.example.com", "a.example.com.evil"), 0);
    cr_assert_eq(tls_name_matches("a.example.com", ""), 0);
    cr_assert_eq(tls_name_matches("", "a.example.com"), 0);
}

Test(tls_names, wildcard_one_label)
{
    cr_assert_eq(tls_name_matches("*.example.com", "a.example.com"), 1);
    cr_assert_eq(tls_name_matches("*.example.com", "www.example.com"), 1);
    cr_assert_eq(tls_name_matches("*.example.com", "x-1.example.com"), 1);
}

Test(tls_names, wildcard_not_apex)
{
    cr_assert_eq(tls_name_matches("*.example.com", "example.com"), 0);
    cr_assert_eq(tls_name_matches("*.example.com", ".example.com"), 0, "empty label");
}

Test(tls_names, wildcard_not_two_labels)
{
    cr_assert_eq(tls_name_matches("*.example.com", "a.b.example.com"), 0);
    cr_assert_eq(tls_name_matches("*.example.com", "a.b.c.example.com"), 0);
}

Test(tls_names, wildcard_other_domains)
{
    cr_assert_eq(tls_name_matches("*.example.com", "a.example.org"), 0);
    cr_assert_eq(tls_name_matches("*.example.com", "a.notexample.com"), 0);
    cr_assert_eq(tls_name_matches("*.example.com", "aexample.com"), 0);
    cr_assert_eq(tls_name_matches("*.example.com", "a.example.com.evil.net"), 0);
    cr_assert_eq(tls_name_matches("*.example.com", "com"), 0);
}

Test(tls_names, only_leading_full_label_wildcards)
{
    /* Partial-label or inner wildcards are plain strings, matched exactly. */
    cr_assert_eq(tls_name_matches("w*.example.com", "www.example.com"), 0);
    cr_assert_eq(tls_name_matches("a.*.example.com", "a.b.example.com"), 0);
    cr_assert_eq(tls_name_matches("*", "localhost"), 0);
    cr_assert_eq(tls_name_matches("*example.com", "a.example.com"), 0);
}

/* ---- certificates made at test time ---- */

static char dir[64];

static EVP_PKEY *genkey(int ec)
{
    EVP_PKEY *k = ec ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                     : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    cr_assert_not_null(k);
    return k;
}

/* Writes DIR/name.pem and DIR/name.key: a self-signed certificate with CN
 * `cn` and the DNS SANs `sans` (comma-separated, may be NULL), whose key is
 * `key` (or a new one). */
static void make_cert(const char *name, const char *cn, const char *sans, int ec, EVP_PKEY *key)
{
    EVP_PKEY *k = key ? key : genkey(ec);
    X509 *x = X509_new();
    cr_assert_not_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff) + 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, k);
    if (sans) {
        char buf[512] = "";
        const char *p = sans;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            strcat(buf, buf[0] ? ",DNS:" : "DNS:");
            strncat(buf, p, len);
            p += len + (e ? 1 : 0);
        }
        X509V3_CTX v3;
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, buf);
        cr_assert_not_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    cr_assert(X509_sign(x, k, EVP_sha256()) > 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    if (!key)
        EVP_PKEY_free(k);
}

static void setup_certs(void)
{
    signal(SIGPIPE, SIG_IGN); /* as in portico: a closed peer is an error code, not a signal */
    snprintf(dir, sizeof(dir), "/tmp/portico-tls-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    make_cert("a", "a.example.test", "a.example.test,www.a.example.test", 0, NULL);
    make_cert("b", "b.example.test", "b.example.test", 0, NULL);
    make_cert("wild", "*.wild.example.test", "*.wild.example.test", 1, NULL);
    make_cert("exact", "exact.wild.example.test", "exact.wild.example.test", 0, NULL);
    make_cert("cnonly", "cn.example.test", NULL, 0, NULL);
    make_cert("dual_rsa", "dual.example.test", "dual.example.test", 0, NULL);
    make_cert("dual_ec", "dual.example.test", "dual.example.test", 1, NULL);
}

static void teardown_certs(void)
{
    const char *names[] = {"a", "b", "wild", "exact", "cnonly", "dual_rsa", "dual_ec", NULL};
    char path[128];
    for (int i = 0; names[i]; i++) {
        snprintf(path, sizeof(path), "%s/%s.pem", dir, names[i]);
        unlink(path);
        snprintf(path, sizeof(path), "%s/%s.key", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* ---- a listener and handshakes ---- */

/* Loads a one-listener config whose certificates are `names` (cert and key
 * of the same name unless "cert:key") and builds its TLS contexts. */
static struct conf *listener(const char *const *names, struct conf_errors *errs)
{
    char yaml[4096];
    int n = snprintf(yaml, sizeof(yaml),
                     "listeners:\n  - listen: 127.0.0.1:8443\n    tls:\n      certificates:\n");
    for (int i = 0; names[i]; i++) {
        char cert[64], key[64];
        const char *colon = strchr(names[i], ':');
        if (colon) {
            snprintf(cert, sizeof(cert), "%.*s", (int)(colon - names[i]), names[i]);
            snprintf(key, sizeof(key), "%s", colon + 1);
        } else {
            snprintf(cert, sizeof(cert), "%s", names[i]);
            snprintf(key, sizeof(key), "%s", names[i]);
        }
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n,
                      "        - {cert: %s/%s.pem, key: %s/%s.key}\n", dir, cert, dir, key);
    }
    snprintf(yaml + n, sizeof(yaml) - (size_t)n, "routes:\n  - respond: {}\n");
    struct conf *c = conf_load_buffer("t.yaml", yaml, strlen(yaml), errs);
    for (size_t i = 0; i < errs->n; i++)
        cr_log_error("%s", errs->msgs[i]);
    cr_assert_not_null(c, "config loads");
    cr_assert_not_null(c->listeners[0].tls);
    return c;
}

static struct conf *listener_ok(const char *const *names)
{
    struct conf_errors errs = {0};
    struct conf *c = listener(names, &errs);
    int rc = tls_build_listeners(c, "t.yaml", &errs);
    for (size_t i = 0; i < errs.n; i++)
        cr_log_error("%s", errs.msgs[i]);
    cr_assert_eq(rc, 0, "contexts build");
    conf_errors_free(&errs);
    return c;
}

struct served {
    char cn[128];
    int key_type; /* EVP_PKEY_RSA / EVP_PKEY_EC */
    char alpn[16];
};

/* One handshake against the listener: client sends `sni` (NULL: none) and,
 * if set, only the signature algorithms `sigalgs`. Returns 0 when it
 * completed, filling *out with what the server presented. */
static int handshake(struct conf *c, const char *sni, const char *sigalgs, struct served *out)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct xport x;
    cr_assert_eq(xport_init_tls(&x, sv[0], c->listeners[0].tls), 0);

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(cctx);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    SSL *cl = SSL_new(cctx);
    SSL_set_fd(cl, sv[1]);
    if (sni)
        SSL_set_tlsext_host_name(cl, sni);
    if (sigalgs)
        cr_assert_eq(SSL_set1_sigalgs_list(cl, sigalgs), 1);
    SSL_set_alpn_protos(cl, (const unsigned char *)"\x08http/1.1", 9);
    SSL_set_connect_state(cl);

    int client_done = 0, failed = 0;
    char buf[256];
    for (int i = 0; i < 200 && !failed; i++) {
        if (!client_done) {
            int r = SSL_do_handshake(cl);
            if (r == 1) {
                client_done = 1;
            } else {
                int e = SSL_get_error(cl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    failed = 1;
            }
        }
        ssize_t n = xport_read(&x, buf, sizeof(buf));
        if (n == IO_ERROR || n == IO_EOF)
            failed = 1;
        if (client_done && tls_handshake_done(&x))
            break;
    }
    int rc = -1;
    if (!failed && client_done && tls_handshake_done(&x)) {
        X509 *peer = SSL_get0_peer_certificate(cl);
        cr_assert_not_null(peer);
        memset(out, 0, sizeof(*out));
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, out->cn,
                                  sizeof(out->cn));
        out->key_type = EVP_PKEY_get_base_id(X509_get0_pubkey(peer));
        const char *a = tls_alpn(&x);
        snprintf(out->alpn, sizeof(out->alpn), "%s", a ? a : "");
        rc = 0;
    }
    ERR_clear_error();
    xport_close(&x); /* sends close_notify: the peer must still be open */
    SSL_free(cl);
    SSL_CTX_free(cctx);
    close(sv[1]);
    return rc;
}

static void expect_cn(struct conf *c, const char *sni, const char *cn)
{
    struct served s;
    cr_assert_eq(handshake(c, sni, NULL, &s), 0, "handshake with SNI %s", sni ? sni : "(none)");
    cr_expect_str_eq(s.cn, cn, "SNI %s: served %s, expected %s", sni ? sni : "(none)", s.cn, cn);
}

TestSuite(tls_sni, .init = setup_certs, .fini = teardown_certs, .timeout = 60);

Test(tls_sni, exact_wildcard_default)
{
    const char *names[] = {"a", "b", "wild", "exact", "cnonly", NULL};
    struct conf *c = listener_ok(names);
    expect_cn(c, "a.example.test", "a.example.test");
    expect_cn(c, "www.a.example.test", "a.example.test");
    expect_cn(c, "b.example.test", "b.example.test");
    expect_cn(c, "x.wild.example.test", "*.wild.example.test");
    /* exact wins over a wildcard listed before it */
    expect_cn(c, "exact.wild.example.test", "exact.wild.example.test");
    /* a certificate without SANs is chosen by its CN */
    expect_cn(c, "cn.example.test", "cn.example.test");
    /* the wildcard covers one label, not two, not the apex: default */
    expect_cn(c, "x.y.wild.example.test", "a.example.test");
    expect_cn(c, "wild.example.test", "a.example.test");
    /* no SNI, unknown name: the first certificate */
    expect_cn(c, NULL, "a.example.test");
    expect_cn(c, "unknown.test", "a.example.test");
    conf_unref(c);
}

Test(tls_sni, case_and_trailing_dot)
{
    const char *names[] = {"a", "b", "wild", NULL};
    struct conf *c = listener_ok(names);
    expect_cn(c, "B.Example.TEST", "b.example.test");
    expect_cn(c, "b.example.test.", "b.example.test");
    expect_cn(c, "X.WILD.example.test", "*.wild.example.test");
    conf_unref(c);
}

Test(tls_sni, default_is_first_in_file_order)
{
    const char *names[] = {"b", "a", NULL};
    struct conf *c = listener_ok(names);
    expect_cn(c, NULL, "b.example.test");
    expect_cn(c, "nomatch.test", "b.example.test");
    expect_cn(c, "a.example.test", "a.example.test");
    conf_unref(c);
}

Test(tls_sni, rsa_and_ecdsa_for_one_name)
{
    const char *names[] = {"a", "dual_ec", "dual_rsa", NULL};
    struct conf *c = listener_ok(names);
    struct served s;
    cr_assert_eq(handshake(c, "dual.example.test", "ECDSA+SHA256", &s), 0);
    cr_expect_str_eq(s.cn, "dual.example.test");
    cr_expect_eq(s.key_type, EVP_PKEY_EC);
    cr_assert_eq(handshake(c, "dual.example.test", "rsa_pss_rsae_sha256:RSA+SHA256", &s), 0);
    cr_expect_str_eq(s.cn, "dual.example.test");
    cr_expect_eq(s.key_type, EVP_PKEY_RSA);
    cr_expect_str_eq(s.alpn, "http/1.1");
    conf_unref(c);
}

Test(tls_sni, ecdsa_only_name)
{
    /* A name with only an ECDSA certificate behind an RSA default. */
    const char *names[] = {"a", "wild", NULL};
    struct conf *c = listener_ok(names);
    struct served s;
    cr_assert_eq(handshake(c, "x.wild.example.test", NULL, &s), 0);
    cr_expect_eq(s.key_type, EVP_PKEY_EC);
    cr_assert_eq(handshake(c, "a.example.test", NULL, &s), 0);
    cr_expect_eq(s.key_type, EVP_PKEY_RSA);
    conf_unref(c);
}

Test(tls_sni, key_mismatch_is_an_error_naming_both_files)
{
    const char *names[] = {"a", "b:a", NULL};
    struct conf_errors errs = {0};
    struct conf *c = listener(names, &errs);
    cr_assert_eq(tls_build_listeners(c, "t.yaml", &errs), -1);
    cr_assert_eq(errs.n, 1);
    char want[256];
    snprintf(want, sizeof(want), "t.yaml:6:11: key '%s/a.key' does not match certificate '%s/b.pem'",
             dir, dir);
    cr_expect(strncmp(errs.msgs[0], want, strlen(want)) == 0, "got: %s\nwant: %s", errs.msgs[0],
              want);
    conf_errors_free(&errs);
    conf_unref(c);
}

Test(tls_sni, missing_file_is_an_error_naming_it)
{
    const char *names[] = {"a", "nope", NULL};
    struct conf_errors errs = {0};
    struct conf *c = listener(names, &errs);
    cr_assert_eq(tls_build_listeners(c, "t.yaml", &errs), -1);
    cr_assert_eq(errs.n, 1);
    char want[128];
    snprintf(want, sizeof(want), "%s/nope.pem", dir);
    cr_expect(strstr(errs.msgs[0], want) != NULL, "got: %s", errs.msgs[0]);
    cr_expect(strncmp(errs.msgs[0], "t.yaml:6:11: ", 13) == 0, "got: %s", errs.msgs[0]);
    conf_errors_free(&errs);
    conf_unref(c);
}
