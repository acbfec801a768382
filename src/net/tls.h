/* tls.h - TLS for listeners (OpenSSL 3): building each listener's contexts
 * from its settings (certificates chosen by SNI, protocol floor, Mozilla
 * "intermediate" ciphers, ALPN, resumption with shared rotating ticket keys,
 * client certificates, OCSP stapling) and the TLS transport for connections. */
#ifndef PORTICO_NET_TLS_H
#define PORTICO_NET_TLS_H

#include <stdatomic.h>
#include <stddef.h>

#include "conf/conf.h"
#include "net/xport.h"

/* Builds the contexts of every TLS listener of c (reading certificates, keys,
 * CA and OCSP files). Returns 0, or -1 with one "file:line:col: message" per
 * problem appended to errs (the file named in the message). Main thread. */
int tls_build_listeners(struct conf *c, const char *conf_name, struct conf_errors *errs);

/* Starts a server-side TLS transport on fd with the listener's context.
 * Returns 0 or -1 (out of memory in OpenSSL). */
int xport_init_tls(struct xport *x, int fd, const struct conf_tls *t);

/* Starts a client-side TLS transport towards an upstream server. `host` is the
 * server's host (used for SNI and verification unless ut->sni is set). A
 * session found in *session_slot is offered for resumption, and new session
 * tickets are stored there (the slot must outlive the connection, or be
 * detached with tls_detach_session_slot first). Returns 0 or -1. */
struct ssl_session_st;
int xport_init_tls_client(struct xport *x, int fd, const struct conf_upstream_tls *ut,
                          const char *host, struct ssl_session_st **session_slot);
void tls_detach_session_slot(struct xport *x);
void tls_session_free(void *session);
/* Offers a saved session for resumption (the connection takes its own ref). */
void tls_offer_session(struct xport *x, void *session);
/* Drives a client handshake: 0 done, IO_AGAIN / IO_WANT_WRITE to wait, or
 * IO_ERROR with a reason in err. */
int tls_handshake(struct xport *x, char *err, size_t errlen);
/* An idle pooled TLS connection became readable: 0 if that was only TLS
 * housekeeping (a session ticket), -1 if the connection must be dropped. */
int tls_idle_check(struct xport *x);

/* After the handshake: the ALPN protocol chosen ("h2", "http/1.1") or NULL. */
const char *tls_alpn(const struct xport *x);
/* True once the handshake has completed. */
int tls_handshake_done(const struct xport *x);
/* The verified client certificate's subject (RFC 2253) into out; returns its
 * length, 0 when there is none. */
size_t tls_client_subject(const struct xport *x, char *out, size_t cap);

/* How well a certificate name matches a (lowercase) host: 2 exact, 1 by a
 * "*.example.com" wildcard (exactly one label), 0 not at all. */
int tls_name_matches(const char *pattern, const char *host);

/* Rotates the session-ticket keys (the previous key still decrypts, so
 * tickets survive one rotation). Main thread, periodically. */
void tls_rotate_ticket_keys(void);

/* Set by the HTTP/2 codec at start-up: "h2" is then negotiated by ALPN. */
extern bool tls_h2_enabled;

/* Counters for metrics. */
extern atomic_ulong tls_handshakes_total, tls_handshake_failures_total;

#endif
