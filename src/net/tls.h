/* tls.h: OpenSSL contexts for the HTTP client and server (TLS 1.2+, verification on). */
#ifndef SEGBUS_NET_TLS_H
#define SEGBUS_NET_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A client context that verifies peers against ca_file (PEM), or the system store
 * (/etc/ssl/certs) when ca_file is NULL. NULL on failure with err[] saying why. */
SSL_CTX *sb_tls_client_ctx(const char *ca_file, char *err, size_t errlen);
/* A server context with a PEM certificate chain and private key. NULL on failure with err[]. */
SSL_CTX *sb_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
