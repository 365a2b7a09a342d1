/* Test certificates made at run time with OpenSSL's API (no private key is ever committed):
 * a CA, a server certificate for 127.0.0.1 and localhost signed by it, a client certificate
 * signed by it, and a second, unrelated CA with a client certificate of its own, written as
 * PEM files into a fresh temporary directory. Header-only: each test file that needs
 * certificates includes it. */
#ifndef KETCH_TESTS_TLS_TEST_UTIL_H
#define KETCH_TESTS_TLS_TEST_UTIL_H

#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TLS_TEST_PATH_BYTES = 128 };

struct tls_test_pki {
    char dir[TLS_TEST_PATH_BYTES];
    char ca[TLS_TEST_PATH_BYTES];         /* CA certificate */
    char server[TLS_TEST_PATH_BYTES];     /* server certificate (IP 127.0.0.1, localhost) */
    char server_key[TLS_TEST_PATH_BYTES]; /* its key */
    char client[TLS_TEST_PATH_BYTES];     /* client certificate signed by the CA */
    char client_key[TLS_TEST_PATH_BYTES]; /* its key */
    char other_ca[TLS_TEST_PATH_BYTES];   /* an unrelated CA */
    char rogue[TLS_TEST_PATH_BYTES];      /* client certificate signed by other_ca */
    char rogue_key[TLS_TEST_PATH_BYTES];  /* its key */
    char enc_key[TLS_TEST_PATH_BYTES];    /* the server key, encrypted with a passphrase */
    char garbage[TLS_TEST_PATH_BYTES];    /* a file that is not PEM */
    char missing[TLS_TEST_PATH_BYTES];    /* a path that does not exist */
};

static EVP_PKEY *tls_test_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(k);
    return k;
}

static void tls_test_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ck_assert_ptr_nonnull(ext);
    ck_assert_int_eq(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, signed by issuer/issuer_key (self-signed when NULL).
 * san and eku may be NULL. */
static X509 *tls_test_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                           bool is_ca, const char *san, const char *eku)
{
    static long serial = 1;
    X509 *c = X509_new();
    ck_assert_ptr_nonnull(c);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), 2 * 86400);
    X509_set_pubkey(c, key);
    X509_NAME *name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer ? issuer : c;
    if (is_ca) {
        tls_test_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE");
        tls_test_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        tls_test_ext(c, iss, NID_basic_constraints, "CA:FALSE");
        tls_test_ext(c, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    }
    tls_test_ext(c, iss, NID_subject_key_identifier, "hash");
    if (san) tls_test_ext(c, iss, NID_subject_alt_name, san);
    if (eku) tls_test_ext(c, iss, NID_ext_key_usage, eku);
    ck_assert_int_gt(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()), 0);
    return c;
}

static void tls_test_write_cert(const char *path, X509 *c)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, c), 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void tls_test_write_key(const char *path, EVP_PKEY *k, const char *passphrase)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    const EVP_CIPHER *cipher = passphrase ? EVP_aes_128_cbc() : NULL;
    ck_assert_int_eq(PEM_write_PrivateKey(f, k, cipher, (unsigned char *)passphrase,
                                          passphrase ? (int)strlen(passphrase) : 0, NULL, NULL),
                     1);
    ck_assert_int_eq(fclose(f), 0);
}

static void tls_test_path(char *out, const struct tls_test_pki *pki, const char *name)
{
    int n = snprintf(out, TLS_TEST_PATH_BYTES, "%s/%s", pki->dir, name);
    ck_assert_int_lt(n, TLS_TEST_PATH_BYTES);
}

/* Makes every file of *pki in a new temporary directory. */
static void tls_test_pki_make(struct tls_test_pki *pki)
{
    memset(pki, 0, sizeof(*pki));
    snprintf(pki->dir, sizeof(pki->dir), "/tmp/ketch-tls-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(pki->dir));
    tls_test_path(pki->ca, pki, "ca.pem");
    tls_test_path(pki->server, pki, "server.pem");
    tls_test_path(pki->server_key, pki, "server-key.pem");
    tls_test_path(pki->client, pki, "client.pem");
    tls_test_path(pki->client_key, pki, "client-key.pem");
    tls_test_path(pki->other_ca, pki, "other-ca.pem");
    tls_test_path(pki->rogue, pki, "rogue.pem");
    tls_test_path(pki->rogue_key, pki, "rogue-key.pem");
    tls_test_path(pki->enc_key, pki, "server-key-encrypted.pem");
    tls_test_path(pki->garbage, pki, "garbage.pem");
    tls_test_path(pki->missing, pki, "no-such-file.pem");

    EVP_PKEY *ca_key = tls_test_key();
    X509 *ca = tls_test_cert("ketch test CA", ca_key, NULL, NULL, true, NULL, NULL);
    tls_test_write_cert(pki->ca, ca);

    EVP_PKEY *srv_key = tls_test_key();
    X509 *srv = tls_test_cert("server", srv_key, ca, ca_key, false, "IP:127.0.0.1,DNS:localhost",
                              "serverAuth,clientAuth");
    tls_test_write_cert(pki->server, srv);
    tls_test_write_key(pki->server_key, srv_key, NULL);
    tls_test_write_key(pki->enc_key, srv_key, "secret");

    EVP_PKEY *cli_key = tls_test_key();
    X509 *cli = tls_test_cert("client", cli_key, ca, ca_key, false, NULL, "clientAuth");
    tls_test_write_cert(pki->client, cli);
    tls_test_write_key(pki->client_key, cli_key, NULL);

    EVP_PKEY *other_key = tls_test_key();
    X509 *other = tls_test_cert("other CA", other_key, NULL, NULL, true, NULL, NULL);
    tls_test_write_cert(pki->other_ca, other);
    EVP_PKEY *rogue_key = tls_test_key();
    X509 *rogue = tls_test_cert("rogue", rogue_key, other, other_key, false,
                                "IP:127.0.0.1,DNS:localhost", "serverAuth,clientAuth");
    tls_test_write_cert(pki->rogue, rogue);
    tls_test_write_key(pki->rogue_key, rogue_key, NULL);

    FILE *f = fopen(pki->garbage, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not a certificate\n", f);
    ck_assert_int_eq(fclose(f), 0);

    X509_free(rogue);
    EVP_PKEY_free(rogue_key);
    X509_free(other);
    EVP_PKEY_free(other_key);
    X509_free(cli);
    EVP_PKEY_free(cli_key);
    X509_free(srv);
    EVP_PKEY_free(srv_key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
}

/* Removes the files and the directory. */
static void tls_test_pki_remove(const struct tls_test_pki *pki)
{
    const char *files[] = { pki->ca,         pki->server,   pki->server_key, pki->client,
                            pki->client_key, pki->other_ca, pki->rogue,      pki->rogue_key,
                            pki->enc_key,    pki->garbage };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(pki->dir);
}

#endif
