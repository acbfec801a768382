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
