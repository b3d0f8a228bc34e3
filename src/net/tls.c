/* tls.c: OpenSSL context setup shared by the HTTP client and server. */
#include "net/tls.h"

#include <stdio.h>

#include <openssl/err.h>

static void ssl_err(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char buf[160] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    if (err && errlen)
        snprintf(err, errlen, "%s %s: %s", what, file ? file : "", buf);
    ERR_clear_error();
}

static SSL_CTX *base_ctx(const SSL_METHOD *m)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* One SSL_write may span many records; we queue all of its output at once. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

SSL_CTX *sb_tls_client_ctx(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = base_ctx(TLS_client_method());
    if (!ctx) {
        ssl_err(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (!ok) {
        ssl_err(err, errlen, "cannot load CA file", ca_file ? ca_file : "(system store)");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

SSL_CTX *sb_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = base_ctx(TLS_server_method());
    if (!ctx) {
        ssl_err(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_err(err, errlen, "cannot load certificate", cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, errlen, "cannot load private key", key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, errlen, "private key does not match certificate", key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
