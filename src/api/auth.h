/* src/api/auth.h: API tokens: their format, hashing, permissions and checks.
 *
 * A token is 40 to 80 characters of [0-9A-Za-z_-] (what Terraform accepts); the
 * store keeps only its SHA-256. Each token has a set of permissions and,
 * optionally, a list of zones (ids or names) it is limited to. */
#ifndef API_AUTH_H
#define API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define AUTH_TOKEN_MIN 40
#define AUTH_TOKEN_MAX 80
#define AUTH_TOKEN_NEW_LEN 40 /* what auth_token_generate() writes */

enum auth_perm {
    AUTH_ZONE_READ = 1 << 0,           /* read zones, apps, accounts */
    AUTH_ZONE_WRITE = 1 << 1,          /* create and delete zones */
    AUTH_ZONE_SETTINGS_WRITE = 1 << 2, /* create, change and delete Spectrum apps */
    AUTH_ANALYTICS_READ = 1 << 3,
    AUTH_LOAD_BALANCING_WRITE = 1 << 4,
    AUTH_FIREWALL_WRITE = 1 << 5,
    AUTH_LOGS_WRITE = 1 << 6,
    AUTH_ALL = (1 << 7) - 1,
};

/* Whether <s> has the token format. */
bool auth_token_is_well_formed(const char *s);
/* SHA-256 of <token>. */
void auth_token_hash(const char *token, uint8_t out[32]);
/* Writes a new random token (AUTH_TOKEN_NEW_LEN characters + NUL). Returns 0 or -errno. */
int auth_token_generate(char out[AUTH_TOKEN_NEW_LEN + 1]);

/* Parses "zone_read,zone_settings_write" ("all" = every permission). Returns 0,
 * or -EINVAL with the offending name in <bad>. */
int auth_perms_parse(const char *list, unsigned *out, char *bad, size_t badlen);
/* Writes the names of <perms>, comma-separated, into <buf>. */
void auth_perms_format(unsigned perms, char *buf, size_t len);

/* Finds the token in an Authorization header value ("Bearer <token>"). Returns 0
 * and fills <out>; -EINVAL when the header is missing or malformed; -ENOENT when
 * the token is unknown; another negative errno when the store fails. The hash is
 * compared in constant time. */
int auth_lookup(struct store *s, const char *authorization, struct store_token *out);

/* Whether token <t> may touch the zone <zone_id> named <zone_name>. */
bool auth_zone_allowed(const struct store_token *t, const char *zone_id, const char *zone_name);

#endif
