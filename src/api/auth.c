/* src/api/auth.c: bearer tokens.
 *
 * Only SHA-256 hashes are stored, so a leaked database gives no usable token.
 * Lookup is by hash (a unique index), then the stored hash is compared with
 * CRYPTO_memcmp, so no step compares secret bytes in a data-dependent time.
 * Tokens never reach a log line: nothing here logs, and callers log token ids. */
#include "api/auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/ids.h"
#include "core/bug.h"

static const char *const perm_names[] = {
    "zone_read",      "zone_write", "zone_settings_write", "analytics_read", "load_balancing_write",
    "firewall_write", "logs_write",
};

static bool is_token_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
}

bool auth_token_is_well_formed(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        if (n == AUTH_TOKEN_MAX || !is_token_char(s[n]))
            return false;
    }
    return n >= AUTH_TOKEN_MIN;
}

void auth_token_hash(const char *token, uint8_t out[32])
{
    unsigned int len = 32;

    if (EVP_Digest(token, strlen(token), out, &len, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32); /* cannot happen with the default provider; matches nothing */
}

int auth_token_generate(char out[AUTH_TOKEN_NEW_LEN + 1])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t b[AUTH_TOKEN_NEW_LEN * 3 / 4]; /* 30 bytes -> 40 characters */
    int err = ids_random_bytes(b, sizeof(b));

    if (err < 0)
        return err;
    for (size_t i = 0, o = 0; i < sizeof(b); i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    out[AUTH_TOKEN_NEW_LEN] = '\0';
    OPENSSL_cleanse(b, sizeof(b));
    return 0;
}

int auth_perms_parse(const char *list, unsigned *out, char *bad, size_t badlen)
{
    const char *p = list;
    unsigned perms = 0;

    while (*p) {
        size_t n = strcspn(p, ",");
        bool found = false;

        while (n > 0 && (*p == ' ')) {
            p++;
            n--;
        }
        if (n == 3 && strncmp(p, "all", 3) == 0) {
            perms |= AUTH_ALL;
            found = true;
        }
        for (size_t i = 0; i < ARRAY_SIZE(perm_names) && !found; i++) {
            if (strlen(perm_names[i]) == n && strncmp(p, perm_names[i], n) == 0) {
                perms |= 1u << i;
                found = true;
            }
        }
        if (!found) {
            snprintf(bad, badlen, "%.*s", (int)(n > 64 ? 64 : n), p);
            return -EINVAL;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (perms == 0) {
        snprintf(bad, badlen, "(none)");
        return -EINVAL;
    }
    *out = perms;
    return 0;
}

void auth_perms_format(unsigned perms, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(perm_names); i++) {
        if (!(perms & (1u << i)))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", perm_names[i]);
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
    }
}

int auth_lookup(struct store *s, const char *authorization, struct store_token *out)
{
    uint8_t hash[32];
    const char *tok;
    int rc;

    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return -EINVAL;
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    if (!auth_token_is_well_formed(tok))
        return -EINVAL;
    auth_token_hash(tok, hash);
    rc = store_token_find(s, hash, out);
    if (rc < 0)
        return rc;
    if (CRYPTO_memcmp(hash, out->hash, sizeof(hash)) != 0)
        return -ENOENT;
    return 0;
}

bool auth_zone_allowed(const struct store_token *t, const char *zone_id, const char *zone_name)
{
    const char *p = t->zones;

    if (!p[0])
        return true;
    while (*p) {
        size_t n = strcspn(p, ",");

        if ((strlen(zone_id) == n && strncmp(p, zone_id, n) == 0) ||
            (strlen(zone_name) == n && strncasecmp(p, zone_name, n) == 0))
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}
