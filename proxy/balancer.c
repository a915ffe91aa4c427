/* SPDX-License-Identifier: MIT */
/* Member choice: smooth weighted round-robin over members that are up and have room. */
#include "proxy/balancer.h"

#include <stddef.h>

#include "common/list.h"
#include "config/config.h"
#include "proxy/pool.h"

static bool has_room(const struct lw_upstream *up, const struct lw_member *m)
{
    return !lw_list_is_empty(&m->idle) || m->num_conns < up->cfg->max_connections;
}

struct lw_member *lw_balancer_pick(struct lw_upstream *up, const struct lw_member *exclude, uint64_t now_ms)
{
    struct lw_member *best = NULL, *fallback = NULL;
    int64_t total = 0;
    bool any_up = false;
    struct lw_list *it;
    for (it = up->members.next; it != &up->members; it = it->next) {
        struct lw_member *m = LW_LIST_ENTRY(it, struct lw_member, link);
        if (m->down_until_ms <= now_ms && m != exclude) {
            any_up = true;
        }
    }
    for (it = up->members.next; it != &up->members; it = it->next) {
        struct lw_member *m = LW_LIST_ENTRY(it, struct lw_member, link);
        bool down = m->down_until_ms > now_ms || (m == exclude && up->num_members > 1);
        if (!has_room(up, m)) {
            continue;
        }
        if (down) {
            /* When nothing is up, the member whose back-off ends first gets the request. */
            if (!any_up && (fallback == NULL || m->down_until_ms < fallback->down_until_ms)) {
                fallback = m;
            }
            continue;
        }
        m->current_weight += m->weight;
        total += m->weight;
        if (best == NULL || m->current_weight > best->current_weight) {
            best = m;
        }
    }
    if (best != NULL) {
        best->current_weight -= total;
        return best;
    }
    return fallback;
}
