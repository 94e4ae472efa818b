/* src/api/api_accounts.c: /client/v4/accounts. A node has exactly one account,
 * created on its first start; zones created without account.id belong to it. */
#include <string.h>

#include "api/api_internal.h"

static json_t *account_json(const struct store_account *a)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:b, s:b}}", "id", a->id, "name", a->name, "type",
                     "standard", "created_on", a->created_on, "settings", "enforce_twofactor", 0,
                     "use_account_custom_ns_by_default", 0);
}

void api__accounts_list(struct api_call *c)
{
    static const char *const orders[] = {"name"};
    struct api_page p;
    json_t *item;

    if (api__page_params(c, orders, 1, 0, &p) < 0)
        return;
    item = account_json(&c->api->account);
    if (!item)
        return;
    api__ok_page(c, &item, 1, &p);
    json_decref(item);
}

void api__account_get(struct api_call *c)
{
    if (strcmp(c->m.params[0], c->api->account.id) != 0) {
        api__fail(c, 404, ENVELOPE_ERR_NO_ROUTE,
                  "Could not route to /accounts/%.64s, perhaps your object identifier is invalid?",
                  c->m.params[0]);
        return;
    }
    api__ok(c, 200, account_json(&c->api->account));
}
