/* src/api/api_tokens.c: token verification, the bootstrap token and
 * `prism token create`.
 *
 * The bootstrap token is the operator's first key: PRISM_API_TOKEN if set, else
 * the content of <data_dir>/api-token, which the first start writes (mode 0600,
 * O_EXCL so an existing file is never overwritten). Whichever it is, its hash
 * replaces the previous bootstrap row at every start, so changing the variable
 * or the file rotates the token; other tokens are untouched. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "api/api_internal.h"
#include "core/log.h"

void api__token_verify(struct api_call *c)
{
    api__ok(c, 200,
            json_pack("{s:s, s:s, s:n, s:n}", "id", c->token.id, "status", "active", "not_before",
                      "expires_on"));
}

/* Reads the token file into <tok>. Returns 0, -ENOENT, or -EINVAL (bad content). */
static int read_token_file(const char *path, char *tok, size_t cap)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f)
        return -errno;
    n = fread(tok, 1, cap - 1, f);
    fclose(f);
    tok[n] = '\0';
    while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
        tok[--n] = '\0';
    return auth_token_is_well_formed(tok) ? 0 : -EINVAL;
}

static int write_token_file(const char *path, const char *tok)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), err = 0;
    size_t len = strlen(tok);

    if (fd == -1)
        return -errno;
    if (write(fd, tok, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) == -1)
        err = errno ? -errno : -EIO;
    close(fd);
    if (err)
        unlink(path);
    return err;
}

int api_bootstrap_token(struct api *api, const char *env_token, const char *data_dir, char *where,
                        size_t wherelen, char *err, size_t errlen)
{
    char path[4200], tok[AUTH_TOKEN_MAX + 2];
    struct store_token t;
    int rc;

    memset(&t, 0, sizeof(t));
    if (env_token && env_token[0]) {
        if (!auth_token_is_well_formed(env_token)) {
            snprintf(err, errlen,
                     "PRISM_API_TOKEN: must be %d to %d characters of 0-9, A-Z, a-z, '_' and '-'",
                     AUTH_TOKEN_MIN, AUTH_TOKEN_MAX);
            return -EINVAL;
        }
        snprintf(tok, sizeof(tok), "%s", env_token);
        snprintf(where, wherelen, "PRISM_API_TOKEN");
    } else {
        snprintf(path, sizeof(path), "%s/api-token", data_dir);
        snprintf(where, wherelen, "%s", path);
        rc = read_token_file(path, tok, sizeof(tok));
        if (rc == -ENOENT) {
            rc = auth_token_generate(tok);
            if (rc == 0)
                rc = write_token_file(path, tok);
            if (rc < 0) {
                snprintf(err, errlen, "writing the API token to %s: %s", path, strerror(-rc));
                return rc;
            }
        } else if (rc == -EINVAL) {
            snprintf(err, errlen,
                     "%s does not hold a token (%d to %d characters of 0-9, A-Z, a-z, '_', '-');"
                     " fix it or delete it to get a new one",
                     path, AUTH_TOKEN_MIN, AUTH_TOKEN_MAX);
            return rc;
        } else if (rc < 0) {
            snprintf(err, errlen, "reading %s: %s", path, strerror(-rc));
            return rc;
        }
    }
    auth_token_hash(tok, t.hash);
    OPENSSL_cleanse(tok, sizeof(tok));
    rc = store_token_find(api->store, t.hash, &t);
    if (rc == 0 && t.is_bootstrap)
        return 0; /* already there */
    if (rc == 0) {
        /* The same secret as a token made with `prism token create`: fine, it
         * keeps that token's permissions. */
        return 0;
    }
    if (ids_random_hex(t.id) < 0) {
        snprintf(err, errlen, "getrandom failed");
        return -EIO;
    }
    snprintf(t.name, sizeof(t.name), "bootstrap");
    auth_perms_format(AUTH_ALL, t.permissions, sizeof(t.permissions));
    t.zones[0] = '\0';
    ids_now(t.created_on);
    rc = store_begin(api->store);
    if (rc == 0)
        rc = store_token_set_bootstrap(api->store, &t);
    if (rc == 0)
        rc = store_commit(api->store);
    else
        store_rollback(api->store);
    if (rc < 0) {
        snprintf(err, errlen, "storing the bootstrap token: %s", store_errmsg(api->store));
        return rc;
    }
    return 0;
}

/* Checks a comma list of zone ids or names (syntax only: a zone may be created later). */
static bool zones_list_ok(const char *list)
{
    const char *p = list;

    while (*p) {
        size_t n = strcspn(p, ",");

        if (n == 0 || n > STORE_NAME_MAX)
            return false;
        for (size_t i = 0; i < n; i++) {
            char ch = p[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
                return false;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

int api_token_create(const char *db_path, const char *name, const char *perms, const char *zones,
                     char *token_out, size_t token_len, char *err, size_t errlen)
{
    struct store_token t;
    struct store *s;
    unsigned bits;
    char bad[80];
    int rc;

    memset(&t, 0, sizeof(t));
    if (!name[0] || strlen(name) >= sizeof(t.name)) {
        snprintf(err, errlen, "--name: must be 1 to %zu characters", sizeof(t.name) - 1);
        return -EINVAL;
    }
    if (auth_perms_parse(perms, &bits, bad, sizeof(bad)) < 0) {
        char all[256];

        auth_perms_format(AUTH_ALL, all, sizeof(all));
        snprintf(err, errlen, "--permissions: unknown permission '%s' (known: %s, or all)", bad,
                 all);
        return -EINVAL;
    }
    if (!zones)
        zones = "";
    if (strlen(zones) >= sizeof(t.zones) || !zones_list_ok(zones)) {
        snprintf(err, errlen, "--zones: must be a comma list of zone ids or zone names");
        return -EINVAL;
    }
    if (token_len < AUTH_TOKEN_NEW_LEN + 1) {
        snprintf(err, errlen, "internal: token buffer too small");
        return -EINVAL;
    }
    s = store_open(db_path, err, errlen);
    if (!s)
        return -EIO;
    snprintf(t.name, sizeof(t.name), "%s", name);
    auth_perms_format(bits, t.permissions, sizeof(t.permissions));
    snprintf(t.zones, sizeof(t.zones), "%s", zones);
    ids_now(t.created_on);
    rc = ids_random_hex(t.id);
    if (rc == 0)
        rc = auth_token_generate(token_out);
    if (rc == 0) {
        auth_token_hash(token_out, t.hash);
        rc = store_token_insert(s, &t);
    }
    if (rc < 0) {
        snprintf(err, errlen, "storing the token in %s: %s", db_path,
                 rc == -EBUSY ? "the database stayed locked" : store_errmsg(s));
        OPENSSL_cleanse(token_out, token_len);
    }
    store_close(s);
    return rc;
}
