/* SPDX-License-Identifier: MIT */
/*
 * The configuration loader. libyaml builds a node tree, then a walk shaped like the schema
 * fills a struct lw_config, checking every key as it goes. A problem never stops the walk: it
 * is recorded as "file:line:col: message" and the default stays in place, so one load reports
 * everything wrong with a file and the operator fixes it in one pass. The snapshot is complete
 * before anyone sees it and never changes afterwards, which is what lets every worker share it
 * behind nothing more than a reference count.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "common/err.h"
#include "common/mem.h"

#define LW_CONFIG_MAX_FILE_BYTES (4u * 1024 * 1024)
#define LW_CONFIG_SECOND_MS 1000u
#define LW_CONFIG_MINUTE_MS (60u * LW_CONFIG_SECOND_MS)
#define LW_CONFIG_HOUR_MS (60u * LW_CONFIG_MINUTE_MS)
#define LW_CONFIG_KIB 1024u
#define LW_CONFIG_MIB (1024u * 1024u)
/* Numbers saturate here while being read: far above any uint32, far below where multiplying by
 * an hour in milliseconds could overflow a uint64. */
#define LW_CONFIG_NUM_CAP (UINT64_C(1) << 40)

/* One problem, kept with its position so that the report can be put in file order. */
struct problem {
    size_t line, col, seq;
    char *msg;
};

struct loader {
    const char *name; /* file name used in messages */
    const char *text; /* the input, to turn libyaml's byte offsets into line:col */
    size_t len;
    const char *base_dir; /* relative certificate paths are resolved against it; NULL: as written */
    yaml_document_t doc;
    size_t num_nodes;  /* the document's; alias uses are numbered after them */
    yaml_node_t *uses; /* one node per alias use: see mark_alias_uses */
    size_t num_uses;
    struct lw_config *cfg;
    struct problem *problems;
    size_t num_problems;
};

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        n = 0;
    }
    char *s = lw_malloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

static void add_error(struct lw_config_errors *errs, char *msg)
{
    errs->msgs = lw_realloc(errs->msgs, (errs->count + 1) * sizeof(*errs->msgs));
    errs->msgs[errs->count++] = msg;
}

static void vfail(struct loader *ld, size_t line, size_t col, const char *fmt, va_list ap)
{
    char *msg = vformat(fmt, ap);
    ld->problems = lw_realloc(ld->problems, (ld->num_problems + 1) * sizeof(*ld->problems));
    ld->problems[ld->num_problems] = (struct problem){line, col, ld->num_problems, NULL};
    ld->problems[ld->num_problems++].msg = format("%s:%zu:%zu: %s", ld->name, line, col, msg);
    free(msg);
}

static int cmp_problem(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    if (x->line != y->line) {
        return x->line < y->line ? -1 : 1;
    }
    if (x->col != y->col) {
        return x->col < y->col ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The walk finds some problems late (duplicates, a mapping's keys before its values); a report
 * in file order reads like a compiler's and is fixed top to bottom. */
static void report(struct loader *ld, struct lw_config_errors *errs)
{
    if (ld->num_problems > 1) {
        qsort(ld->problems, ld->num_problems, sizeof(*ld->problems), cmp_problem);
    }
    for (size_t i = 0; i < ld->num_problems; i++) {
        add_error(errs, ld->problems[i].msg);
    }
    free(ld->problems);
    ld->problems = NULL;
    ld->num_problems = 0;
}

static void fail_at(struct loader *ld, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_at(struct loader *ld, size_t line, size_t col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ld, line, col, fmt, ap);
    va_end(ap);
}

/* libyaml marks are 0-based; editors and operators count from 1. */
static void fail(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(ld, node->start_mark.line + 1, node->start_mark.column + 1, fmt, ap);
    va_end(ap);
}

void lw_config_errors_dispose(struct lw_config_errors *errs)
{
    if (errs == NULL) {
        return;
    }
    for (size_t i = 0; i < errs->count; i++) {
        free(errs->msgs[i]);
    }
    free(errs->msgs);
    errs->msgs = NULL;
    errs->count = 0;
}

static void free_config(struct lw_config *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->num_listeners; i++) {
        struct lw_config_listener *l = &c->listeners[i];
        for (size_t j = 0; j < l->num_certs; j++) {
            free(l->certs[j].cert_file);
            free(l->certs[j].key_file);
        }
        free(l->certs);
        free(l->host);
    }
    for (size_t i = 0; i < c->num_backends; i++) {
        struct lw_config_backend *b = &c->backends[i];
        for (size_t j = 0; j < b->num_members; j++) {
            free(b->members[j].host);
        }
        free(b->members);
        free(b->name);
    }
    for (size_t i = 0; i < c->num_routes; i++) {
        free(c->routes[i].host);
        free(c->routes[i].path_prefix);
    }
    for (size_t i = 0; i < c->num_experiments; i++) {
        struct lw_config_experiment *e = &c->experiments[i];
        for (size_t j = 0; j < e->num_arms; j++) {
            free(e->arms[j].name);
        }
        free(e->arms);
        free(e->name);
        free(e->cookie);
    }
    free(c->experiments);
    free(c->admin_host);
    free(c->listeners);
    free(c->backends);
    free(c->routes);
    free(c->source);
    free(c->error_log);
    free(c->access_log);
    free(c);
}

/* ---- nodes and scalars ---- */

static yaml_node_t *node_at(struct loader *ld, int index)
{
    if (index > 0 && (size_t)index > ld->num_nodes) {
        return &ld->uses[(size_t)index - ld->num_nodes - 1];
    }
    return yaml_document_get_node(&ld->doc, index);
}

/* Where the child number `child` of a sequence or mapping node keeps its node's index. */
static yaml_node_item_t *child_slot(yaml_node_t *parent, size_t child)
{
    if (parent->type == YAML_SEQUENCE_NODE) {
        yaml_node_item_t *items = parent->data.sequence.items.start;
        return child < (size_t)(parent->data.sequence.items.top - items) ? &items[child] : NULL;
    }
    yaml_node_pair_t *pairs = parent->data.mapping.pairs.start;
    if (child / 2 >= (size_t)(parent->data.mapping.pairs.top - pairs)) {
        return NULL;
    }
    return child % 2 == 0 ? &pairs[child / 2].key : &pairs[child / 2].value;
}

/*
 * libyaml's document hands an alias the anchor's node, marks and all, so an error in what an
 * alias brings ("'log' must be a mapping") would point at the anchor, lines away from the
 * key it is wrong for. Each use gets a node of its own: a copy of the anchor's that shares
 * its contents (so no alias costs more than one node) with the alias's marks, numbered after
 * the document's.
 * The document numbers its nodes in the order of their events, and a collection's children
 * in order too, so a second pass over the first document's events finds where each alias
 * sits. Anything unexpected ends the pass, leaving the remaining aliases on their anchors.
 */
static void mark_alias_uses(struct loader *ld)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct open_node {
        yaml_node_t *node;
        size_t children;
    } *open = NULL;
    size_t depth = 0, cap = 0, index = 0, uses_cap = 0;
    bool go = true;

    ld->num_nodes = (size_t)(ld->doc.nodes.top - ld->doc.nodes.start);
    if (!yaml_parser_initialize(&parser)) {
        lw_log_error("out of memory initializing libyaml");
        abort();
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)ld->text, ld->len);
    while (go && yaml_parser_parse(&parser, &ev)) {
        bool child = ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
                     ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_ALIAS_EVENT;
        yaml_node_item_t *slot = NULL;
        if (child && depth > 0) {
            slot = child_slot(open[depth - 1].node, open[depth - 1].children++);
            go = slot != NULL;
        }
        if (go && ev.type == YAML_ALIAS_EVENT) {
            yaml_node_t *anchor = slot != NULL ? node_at(ld, *slot) : NULL;
            go = anchor != NULL && (size_t)*slot <= ld->num_nodes && ld->num_nodes + ld->num_uses < INT_MAX;
            if (go) {
                if (ld->num_uses == uses_cap) {
                    uses_cap = uses_cap ? 2 * uses_cap : 16;
                    ld->uses = lw_realloc(ld->uses, uses_cap * sizeof(*ld->uses));
                }
                yaml_node_t *use = &ld->uses[ld->num_uses++];
                *use = *anchor;
                use->start_mark = ev.start_mark;
                use->end_mark = ev.end_mark;
                *slot = (int)(ld->num_nodes + ld->num_uses);
            }
        } else if (go && child && ++index > ld->num_nodes) {
            go = false;
        } else if (go && (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)) {
            if (depth == cap) {
                cap = cap ? 2 * cap : 16;
                open = lw_realloc(open, cap * sizeof(*open));
            }
            open[depth++] = (struct open_node){node_at(ld, (int)index), 0};
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            go = depth-- > 0;
        } else if (ev.type == YAML_DOCUMENT_END_EVENT || ev.type == YAML_STREAM_END_EVENT) {
            go = false;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    free(open);
}

/* The text of a scalar node, or NULL for a mapping, a sequence, or a string with an escaped
 * NUL in it (which would silently truncate a path or a name). */
static const char *scalar(const yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE) {
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    return strlen(s) == n->data.scalar.length ? s : NULL;
}

static size_t list_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *list_item(struct loader *ld, const yaml_node_t *n, size_t i)
{
    return node_at(ld, n->data.sequence.items.start[i]);
}

/*
 * Check that node is a mapping whose keys are all in keys[], and hand back the value node of
 * each key (NULL when absent). label names the node in a type error ("a listener"), ctx says
 * where an unknown or duplicate key sits ("in listener"). libyaml keeps duplicate keys, so
 * they are caught here: YAML forbids them, and silently taking the last one hides typos.
 */
static bool read_mapping(struct loader *ld, yaml_node_t *node, const char *label, const char *ctx,
                         const char *const *keys, size_t nkeys, yaml_node_t **vals)
{
    memset(vals, 0, nkeys * sizeof(*vals));
    if (node->type != YAML_MAPPING_NODE) {
        fail(ld, node, "%s must be a mapping", label);
        return false;
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(ld, p->key);
        const char *name = scalar(k);
        if (name == NULL) {
            fail(ld, k, "keys %s must be strings", ctx);
            continue;
        }
        size_t i = 0;
        while (i < nkeys && strcmp(keys[i], name) != 0) {
            i++;
        }
        if (i == nkeys) {
            fail(ld, k, "unknown key '%s' %s", name, ctx);
        } else if (vals[i] != NULL) {
            fail(ld, k, "duplicate key '%s' %s", name, ctx);
        } else {
            vals[i] = node_at(ld, p->value);
        }
    }
    return true;
}

/* A list with at least one entry; a present but empty list is always a mistake here. */
static bool check_list(struct loader *ld, yaml_node_t *n, const char *key)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        fail(ld, n, "'%s' must be a list", key);
        return false;
    }
    if (list_len(n) == 0) {
        fail(ld, n, "'%s' must have at least one entry", key);
        return false;
    }
    return true;
}

/* A non-empty string, borrowed from the document. */
static const char *get_string(struct loader *ld, yaml_node_t *n, const char *key)
{
    const char *s = scalar(n);
    if (s == NULL) {
        fail(ld, n, "'%s' must be a string", key);
        return NULL;
    }
    if (s[0] == '\0') {
        fail(ld, n, "'%s' must not be empty", key);
        return NULL;
    }
    return s;
}

/* Decimal digits only: no sign, no 0x, no exponent, so "010" is ten and never eight. */
static bool parse_digits(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9') {
        return false;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v < LW_CONFIG_NUM_CAP) {
            v = v * 10 + (uint64_t)(*s - '0');
        }
    }
    *p = s;
    *out = v;
    return true;
}

static bool parse_uint(const char *s, uint64_t *out)
{
    return parse_digits(&s, out) && *s == '\0';
}

static bool parse_duration(const char *s, uint64_t *out)
{
    uint64_t v, unit;
    if (!parse_digits(&s, &v)) {
        return false;
    }
    if (strcmp(s, "") == 0 || strcmp(s, "s") == 0) {
        unit = LW_CONFIG_SECOND_MS;
    } else if (strcmp(s, "ms") == 0) {
        unit = 1;
    } else if (strcmp(s, "m") == 0) {
        unit = LW_CONFIG_MINUTE_MS;
    } else if (strcmp(s, "h") == 0) {
        unit = LW_CONFIG_HOUR_MS;
    } else {
        return false;
    }
    *out = v * unit;
    return true;
}

static bool parse_size(const char *s, uint64_t *out)
{
    uint64_t v, unit;
    if (!parse_digits(&s, &v)) {
        return false;
    }
    if (strcmp(s, "") == 0) {
        unit = 1;
    } else if (strcasecmp(s, "k") == 0) {
        unit = LW_CONFIG_KIB;
    } else if (strcasecmp(s, "m") == 0) {
        unit = LW_CONFIG_MIB;
    } else {
        return false;
    }
    *out = v * unit;
    return true;
}

/* YAML 1.1 spellings, which is what libyaml's users write and what operators expect. */
static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < LW_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Write a duration back the way an operator would, for range messages. */
static void fmt_duration(char *buf, size_t len, uint32_t ms)
{
    if (ms != 0 && ms % LW_CONFIG_HOUR_MS == 0) {
        snprintf(buf, len, "%uh", ms / LW_CONFIG_HOUR_MS);
    } else if (ms != 0 && ms % LW_CONFIG_MINUTE_MS == 0) {
        snprintf(buf, len, "%um", ms / LW_CONFIG_MINUTE_MS);
    } else if (ms != 0 && ms % LW_CONFIG_SECOND_MS == 0) {
        snprintf(buf, len, "%us", ms / LW_CONFIG_SECOND_MS);
    } else {
        snprintf(buf, len, "%ums", ms);
    }
}

static void fmt_size(char *buf, size_t len, uint32_t bytes)
{
    if (bytes != 0 && bytes % LW_CONFIG_MIB == 0) {
        snprintf(buf, len, "%um", bytes / LW_CONFIG_MIB);
    } else if (bytes != 0 && bytes % LW_CONFIG_KIB == 0) {
        snprintf(buf, len, "%uk", bytes / LW_CONFIG_KIB);
    } else {
        snprintf(buf, len, "%u", bytes);
    }
}

/* The get_* helpers leave *out (the default) alone when the key is absent or wrong. */

static void get_uint(struct loader *ld, yaml_node_t *n, const char *key, uint32_t min, uint32_t max, uint32_t *out)
{
    if (n == NULL) {
        return;
    }
    const char *s = scalar(n);
    uint64_t v;
    /* A negative number is a range problem, not a type problem, and says so. */
    bool negative = s != NULL && s[0] == '-' && parse_uint(s + 1, &v);
    if (s == NULL || (!negative && !parse_uint(s, &v))) {
        fail(ld, n, "'%s' must be an integer", key);
    } else if (negative || v < min || v > max) {
        fail(ld, n, "'%s' must be between %u and %u", key, min, max);
    } else {
        *out = (uint32_t)v;
    }
}

static void get_duration(struct loader *ld, yaml_node_t *n, const char *key, uint32_t min, uint32_t max, uint32_t *out)
{
    if (n == NULL) {
        return;
    }
    const char *s = scalar(n);
    uint64_t v;
    char lo[32], hi[32];
    if (s == NULL || !parse_duration(s, &v)) {
        fail(ld, n, "'%s' must be a duration such as 250ms, 10s, 5m or 1h", key);
    } else if (v < min || v > max) {
        fmt_duration(lo, sizeof(lo), min);
        fmt_duration(hi, sizeof(hi), max);
        fail(ld, n, "'%s' must be between %s and %s", key, lo, hi);
    } else {
        *out = (uint32_t)v;
    }
}

static void get_size(struct loader *ld, yaml_node_t *n, const char *key, uint32_t min, uint32_t max, uint32_t *out)
{
    if (n == NULL) {
        return;
    }
    const char *s = scalar(n);
    uint64_t v;
    char lo[32], hi[32];
    if (s == NULL || !parse_size(s, &v)) {
        fail(ld, n, "'%s' must be a size such as 512, 64k or 1m", key);
    } else if (v < min || v > max) {
        fmt_size(lo, sizeof(lo), min);
        fmt_size(hi, sizeof(hi), max);
        fail(ld, n, "'%s' must be between %s and %s", key, lo, hi);
    } else {
        *out = (uint32_t)v;
    }
}

static void get_bool(struct loader *ld, yaml_node_t *n, const char *key, bool *out)
{
    if (n == NULL) {
        return;
    }
    const char *s = scalar(n);
    if (s == NULL || !parse_bool(s, out)) {
        fail(ld, n, "'%s' must be true or false", key);
    }
}

/* ---- addresses and names ---- */

/* RFC 1123 labels, plus '_' which real service names (and /etc/hosts entries) use. */
static bool is_host_name(const char *s)
{
    size_t len = strlen(s), label = 0;
    if (len > 0 && s[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len > 253) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
            if (++label > 63) {
                return false;
            }
        } else {
            return false;
        }
    }
    return label > 0;
}

/* "0".."65535" in decimal with nothing else; members also refuse port 0. */
static bool parse_port(const char *s, uint32_t min, uint16_t *out)
{
    uint64_t v;
    if (strlen(s) > 5 || !parse_uint(s, &v) || v < min || v > 65535) {
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

/*
 * "host:port", "[v6]:port", and for listeners "*:port" and ":port" meaning every IPv4 address.
 * Listeners bind, so their host must be a literal; it is stored in canonical form so that two
 * spellings of one address are caught as duplicates. Members may name a host for c-ares.
 */
static void parse_address(struct loader *ld, yaml_node_t *n, bool listener, char **host, uint16_t *port)
{
    const char *s = get_string(ld, n, "address");
    const char *h, *colon;
    size_t hlen;
    bool bracketed = false;
    char *name = NULL;
    unsigned char bin[sizeof(struct in6_addr)];
    char canon[INET6_ADDRSTRLEN];

    if (s == NULL) {
        goto Exit;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            fail(ld, n, "bad address '%s': expected \"[IPv6]:port\"", s);
            goto Exit;
        }
        bracketed = true;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            fail(ld, n, "bad address '%s': expected \"host:port\"", s);
            goto Exit;
        }
        h = s;
        hlen = (size_t)(colon - s);
        if (memchr(h, ':', hlen) != NULL) {
            fail(ld, n, "bad address '%s': write IPv6 addresses in brackets, e.g. [::1]:8080", s);
            goto Exit;
        }
    }
    if (!parse_port(colon + 1, listener ? 0 : 1, port)) {
        fail(ld, n, "bad address '%s': the port must be %d..65535", s, listener ? 0 : 1);
        goto Exit;
    }
    name = lw_strndup(h, hlen);
    if (bracketed) {
        if (inet_pton(AF_INET6, name, bin) != 1) {
            fail(ld, n, "bad address '%s': '%s' is not an IPv6 address", s, name);
            goto Exit;
        }
        inet_ntop(AF_INET6, bin, canon, sizeof(canon));
        *host = lw_strdup(canon);
    } else if (listener) {
        if (hlen == 0 || strcmp(name, "*") == 0) {
            *host = lw_strdup("0.0.0.0");
        } else if (inet_pton(AF_INET, name, bin) == 1) {
            inet_ntop(AF_INET, bin, canon, sizeof(canon));
            *host = lw_strdup(canon);
        } else {
            fail(ld, n, "bad address '%s': a listener needs a literal IP address, not '%s'", s, name);
        }
    } else if (hlen == 0) {
        fail(ld, n, "bad address '%s': the host is missing", s);
    } else if (inet_pton(AF_INET, name, bin) == 1 || is_host_name(name)) {
        *host = name;
        name = NULL;
    } else {
        fail(ld, n, "bad address '%s': '%s' is not a host name or IP address", s, name);
    }

Exit:
    free(name);
}

/* Relative paths follow the config file, not the directory the daemon happened to start in. */
static char *resolve_path(struct loader *ld, const char *p)
{
    if (p[0] == '/' || ld->base_dir == NULL) {
        return lw_strdup(p);
    }
    size_t dlen = strlen(ld->base_dir);
    const char *sep = dlen > 0 && ld->base_dir[dlen - 1] == '/' ? "" : "/";
    return format("%s%s%s", ld->base_dir, sep, p);
}

/* Check now so that a typo fails the load with a line number, not the start-up much later. */
static char *get_file(struct loader *ld, yaml_node_t *n, const char *key, const char *what)
{
    const char *s = get_string(ld, n, key);
    struct stat st;
    if (s == NULL) {
        return NULL;
    }
    char *path = resolve_path(ld, s);
    if (access(path, R_OK) != 0) {
        int err = errno;
        fail(ld, n, "cannot read %s '%s': %s", what, path, strerror(err));
    } else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fail(ld, n, "cannot read %s '%s': %s", what, path, strerror(EISDIR));
    }
    return path;
}

/* ---- sections ---- */

static void load_log(struct loader *ld, yaml_node_t *node)
{
    enum { LEVEL, ERROR, ACCESS, N };
    static const char *const keys[N] = {"level", "error", "access"};
    yaml_node_t *v[N];
    const char *s;
    struct lw_config *cfg = ld->cfg;

    if (!read_mapping(ld, node, "'log'", "in log", keys, N, v)) {
        return;
    }
    if (v[LEVEL] != NULL) {
        s = scalar(v[LEVEL]);
        if (s == NULL || !lw_log_parse_level(s, &cfg->log_level)) {
            fail(ld, v[LEVEL], "'level' must be one of error, warn, info, debug");
        }
    }
    if (v[ERROR] != NULL && (s = get_string(ld, v[ERROR], "error")) != NULL) {
        cfg->error_log = strcmp(s, "stderr") == 0 ? NULL : lw_strdup(s);
    }
    if (v[ACCESS] != NULL && (s = get_string(ld, v[ACCESS], "access")) != NULL) {
        cfg->access_log = strcmp(s, "stdout") == 0 ? NULL : lw_strdup(s);
    }
}

static void load_limits(struct loader *ld, yaml_node_t *node)
{
    enum { HDR_BYTES, HEADERS, STREAMS, IDLE, HDR_TIMEOUT, BUFFERED, N };
    static const char *const keys[N] = {"max_header_bytes",    "max_headers",           "max_concurrent_streams",
                                        "client_idle_timeout", "client_header_timeout", "max_buffered_bytes"};
    yaml_node_t *v[N];
    struct lw_config_limits *lim = &ld->cfg->limits;

    if (!read_mapping(ld, node, "'limits'", "in limits", keys, N, v)) {
        return;
    }
    /* Below 1k not even a browser's ordinary request head fits. */
    get_size(ld, v[HDR_BYTES], "max_header_bytes", LW_CONFIG_KIB, 16 * LW_CONFIG_MIB, &lim->max_header_bytes);
    get_uint(ld, v[HEADERS], "max_headers", 1, 10000, &lim->max_headers);
    /* RFC 9113 6.5.2: stream counts are 31-bit. */
    get_uint(ld, v[STREAMS], "max_concurrent_streams", 1, INT32_MAX, &lim->max_concurrent_streams);
    get_duration(ld, v[IDLE], "client_idle_timeout", 1, UINT32_MAX, &lim->client_idle_timeout_ms);
    get_duration(ld, v[HDR_TIMEOUT], "client_header_timeout", 1, UINT32_MAX, &lim->client_header_timeout_ms);
    get_size(ld, v[BUFFERED], "max_buffered_bytes", LW_CONFIG_KIB, 1024 * LW_CONFIG_MIB, &lim->max_buffered_bytes);
}

static void load_certificate(struct loader *ld, yaml_node_t *node, struct lw_config_cert *cert)
{
    enum { CERT, KEY, N };
    static const char *const keys[N] = {"cert", "key"};
    yaml_node_t *v[N];

    if (!read_mapping(ld, node, "a certificate", "in certificate", keys, N, v)) {
        return;
    }
    if (v[CERT] == NULL) {
        fail(ld, node, "missing required key 'cert' in certificate");
    } else {
        cert->cert_file = get_file(ld, v[CERT], "cert", "certificate");
    }
    if (v[KEY] == NULL) {
        fail(ld, node, "missing required key 'key' in certificate");
    } else {
        cert->key_file = get_file(ld, v[KEY], "key", "key");
    }
}

static void load_tls(struct loader *ld, yaml_node_t *node, struct lw_config_listener *l)
{
    enum { CERTS, TICKETS, ROTATION, N };
    static const char *const keys[N] = {"certificates", "session_tickets", "ticket_rotation"};
    yaml_node_t *v[N];
    const char *s = scalar(node);

    if (node->type != YAML_MAPPING_NODE) {
        if (s == NULL || !parse_bool(s, &l->tls)) {
            fail(ld, node, "'tls' must be true, false or a mapping");
        }
        return;
    }
    l->tls = true;
    read_mapping(ld, node, "'tls'", "in tls", keys, N, v);
    if (v[CERTS] != NULL && check_list(ld, v[CERTS], "certificates")) {
        l->num_certs = list_len(v[CERTS]);
        l->certs = lw_calloc(l->num_certs, sizeof(*l->certs));
        for (size_t i = 0; i < l->num_certs; i++) {
            load_certificate(ld, list_item(ld, v[CERTS], i), &l->certs[i]);
        }
    }
    get_bool(ld, v[TICKETS], "session_tickets", &l->session_tickets);
    /* The proxy keeps old keys for two periods, so 2x must still fit in uint32 milliseconds; and
     * a ticket key living for weeks undoes forward secrecy for every session it sealed. */
    get_duration(ld, v[ROTATION], "ticket_rotation", LW_CONFIG_SECOND_MS, 168 * LW_CONFIG_HOUR_MS,
                 &l->ticket_rotation_ms);
}

static void load_responsiveness(struct loader *ld, yaml_node_t *node, struct lw_config_responsiveness *r)
{
    enum { ENABLED, MIN_RTT, MAX_CWND, LOOP_SHARE, QUEUE_LIMIT, N };
    static const char *const keys[N] = {"enabled", "min_rtt", "max_cwnd", "max_loop_share", "queue_limit"};
    yaml_node_t *v[N];
    const char *s = scalar(node);

    if (node->type != YAML_MAPPING_NODE) {
        if (s == NULL || !parse_bool(s, &r->enabled)) {
            fail(ld, node, "'responsiveness' must be true, false or a mapping");
        }
        return;
    }
    if (!read_mapping(ld, node, "'responsiveness'", "in responsiveness", keys, N, v)) {
        return;
    }
    get_bool(ld, v[ENABLED], "enabled", &r->enabled);
    get_duration(ld, v[MIN_RTT], "min_rtt", 0, 60 * LW_CONFIG_SECOND_MS, &r->min_rtt_ms);
    /* In segments: Linux caps snd_cwnd well below a million. */
    get_uint(ld, v[MAX_CWND], "max_cwnd", 0, 1000000, &r->max_cwnd);
    get_uint(ld, v[LOOP_SHARE], "max_loop_share", 1, 100, &r->max_loop_share);
    get_bool(ld, v[QUEUE_LIMIT], "queue_limit", &r->queue_limit);
}

static yaml_node_t *load_listener(struct loader *ld, yaml_node_t *node, struct lw_config_listener *l)
{
    enum { ADDRESS, TLS, RESPONSIVENESS, N };
    static const char *const keys[N] = {"address", "tls", "responsiveness"};
    yaml_node_t *v[N];

    l->session_tickets = true;
    l->ticket_rotation_ms = LW_CONFIG_HOUR_MS;
    /* Tens of ms: on the internet the optimization pays; on a LAN or loopback its extra
     * wake-ups would only cost throughput. */
    l->responsiveness.enabled = true;
    l->responsiveness.min_rtt_ms = 20;
    l->responsiveness.max_cwnd = 0;
    l->responsiveness.max_loop_share = 10;
    l->responsiveness.queue_limit = true;
    l->line = (uint32_t)node->start_mark.line + 1;
    if (!read_mapping(ld, node, "a listener", "in listener", keys, N, v)) {
        return NULL;
    }
    if (v[ADDRESS] == NULL) {
        fail(ld, node, "missing required key 'address' in listener");
    } else {
        parse_address(ld, v[ADDRESS], true, &l->host, &l->port);
    }
    if (v[TLS] != NULL) {
        load_tls(ld, v[TLS], l);
    }
    if (v[RESPONSIVENESS] != NULL) {
        load_responsiveness(ld, v[RESPONSIVENESS], &l->responsiveness);
    }
    return v[ADDRESS];
}

/* Two listeners on one address:port would fail at bind(); say so with both lines now. Port 0
 * asks the kernel for a fresh port each time, so it never collides. */
static void load_listeners(struct loader *ld, yaml_node_t *seq)
{
    struct lw_config *cfg = ld->cfg;
    yaml_node_t **addr = NULL;

    if (!check_list(ld, seq, "listeners")) {
        goto Exit;
    }
    cfg->num_listeners = list_len(seq);
    cfg->listeners = lw_calloc(cfg->num_listeners, sizeof(*cfg->listeners));
    addr = lw_calloc(cfg->num_listeners, sizeof(*addr));
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        addr[i] = load_listener(ld, list_item(ld, seq, i), &cfg->listeners[i]);
    }
    for (size_t i = 1; i < cfg->num_listeners; i++) {
        const struct lw_config_listener *l = &cfg->listeners[i];
        if (l->host == NULL || l->port == 0) {
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            const struct lw_config_listener *o = &cfg->listeners[j];
            if (o->host != NULL && o->port == l->port && strcmp(o->host, l->host) == 0) {
                fail(ld, addr[i], "duplicate listener address '%s' (also on line %u)", scalar(addr[i]), o->line);
                break;
            }
        }
    }

Exit:
    free(addr);
}

static void load_member(struct loader *ld, yaml_node_t *node, struct lw_config_member *m)
{
    enum { ADDRESS, WEIGHT, N };
    static const char *const keys[N] = {"address", "weight"};
    yaml_node_t *v[N];

    m->weight = 1;
    if (node->type == YAML_SCALAR_NODE) {
        parse_address(ld, node, false, &m->host, &m->port);
        return;
    }
    if (node->type != YAML_MAPPING_NODE) {
        fail(ld, node, "a member must be \"host:port\" or a mapping");
        return;
    }
    read_mapping(ld, node, "a member", "in member", keys, N, v);
    if (v[ADDRESS] == NULL) {
        fail(ld, node, "missing required key 'address' in member");
    } else {
        parse_address(ld, v[ADDRESS], false, &m->host, &m->port);
    }
    get_uint(ld, v[WEIGHT], "weight", 1, 1000, &m->weight);
}

static yaml_node_t *load_backend(struct loader *ld, yaml_node_t *node, struct lw_config_backend *b)
{
    enum { NAME, MEMBERS, MAX_CONNS, QUEUE, CONNECT, RESPONSE, IDLE, RESOLVE, MAX_FAILS, BACKOFF, RETRIES, N };
    static const char *const keys[N] = {
        "name",         "members",          "max_connections", "queue",        "connect_timeout", "response_timeout",
        "idle_timeout", "resolve_interval", "max_fails",       "fail_backoff", "retries"};
    yaml_node_t *v[N];
    const char *name;

    b->max_connections = 128;
    b->queue = 1024;
    b->connect_timeout_ms = 3 * LW_CONFIG_SECOND_MS;
    b->response_timeout_ms = 60 * LW_CONFIG_SECOND_MS;
    b->idle_timeout_ms = 30 * LW_CONFIG_SECOND_MS;
    b->resolve_interval_ms = 30 * LW_CONFIG_SECOND_MS;
    b->max_fails = 3;
    b->fail_backoff_ms = 10 * LW_CONFIG_SECOND_MS;
    b->retries = 2;
    if (!read_mapping(ld, node, "a backend", "in backend", keys, N, v)) {
        return NULL;
    }
    if (v[NAME] == NULL) {
        fail(ld, node, "missing required key 'name' in backend");
    } else if ((name = get_string(ld, v[NAME], "name")) != NULL) {
        b->name = lw_strdup(name);
    }
    if (v[MEMBERS] == NULL) {
        fail(ld, node, "missing required key 'members' in backend");
    } else if (check_list(ld, v[MEMBERS], "members")) {
        b->num_members = list_len(v[MEMBERS]);
        b->members = lw_calloc(b->num_members, sizeof(*b->members));
        for (size_t i = 0; i < b->num_members; i++) {
            load_member(ld, list_item(ld, v[MEMBERS], i), &b->members[i]);
        }
    }
    get_uint(ld, v[MAX_CONNS], "max_connections", 1, 100000, &b->max_connections);
    get_uint(ld, v[QUEUE], "queue", 0, 1000000, &b->queue);
    get_duration(ld, v[CONNECT], "connect_timeout", 1, UINT32_MAX, &b->connect_timeout_ms);
    get_duration(ld, v[RESPONSE], "response_timeout", 1, UINT32_MAX, &b->response_timeout_ms);
    get_duration(ld, v[IDLE], "idle_timeout", 1, UINT32_MAX, &b->idle_timeout_ms);
    /* Re-resolving faster than once a second would turn the resolver into a load generator. */
    get_duration(ld, v[RESOLVE], "resolve_interval", LW_CONFIG_SECOND_MS, UINT32_MAX, &b->resolve_interval_ms);
    get_uint(ld, v[MAX_FAILS], "max_fails", 1, 1000, &b->max_fails);
    get_duration(ld, v[BACKOFF], "fail_backoff", 1, UINT32_MAX, &b->fail_backoff_ms);
    get_uint(ld, v[RETRIES], "retries", 0, 100, &b->retries);
    return b->name != NULL ? v[NAME] : NULL;
}

static void load_backends(struct loader *ld, yaml_node_t *seq)
{
    struct lw_config *cfg = ld->cfg;
    yaml_node_t **names = NULL;

    if (!check_list(ld, seq, "backends")) {
        goto Exit;
    }
    cfg->num_backends = list_len(seq);
    cfg->backends = lw_calloc(cfg->num_backends, sizeof(*cfg->backends));
    names = lw_calloc(cfg->num_backends, sizeof(*names));
    for (size_t i = 0; i < cfg->num_backends; i++) {
        names[i] = load_backend(ld, list_item(ld, seq, i), &cfg->backends[i]);
    }
    for (size_t i = 1; i < cfg->num_backends; i++) {
        for (size_t j = 0; names[i] != NULL && j < i; j++) {
            if (names[j] != NULL && strcmp(cfg->backends[i].name, cfg->backends[j].name) == 0) {
                fail(ld, names[i], "duplicate backend name '%s' (also on line %zu)", cfg->backends[i].name,
                     names[j]->start_mark.line + 1);
                break;
            }
        }
    }

Exit:
    free(names);
}

/* An exact name or "*.suffix"; stored lower-case since DNS names compare case-insensitively. */
static char *get_route_host(struct loader *ld, yaml_node_t *n)
{
    const char *s = get_string(ld, n, "host");
    if (s == NULL) {
        return NULL;
    }
    const char *name = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    if (!is_host_name(name)) {
        fail(ld, n, "'host' must be a host name or \"*.suffix\", not '%s'", s);
        return NULL;
    }
    char *host = lw_strdup(s);
    for (char *p = host; *p != '\0'; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    return host;
}

static void push_defaults(struct lw_config_push *p)
{
    /* Hints by default: every current browser acts on a 103, and none accepts push. */
    p->policy = LW_CONFIG_PUSH_HINTS;
    p->h1_hints = false;
    p->max_per_request = 16;
    p->max_per_connection = 100;
}

static bool parse_push_policy(const char *s, enum lw_config_push_policy *out)
{
    static const struct {
        const char *name;
        enum lw_config_push_policy policy;
    } names[] = {{"none", LW_CONFIG_PUSH_NONE},
                 {"hints", LW_CONFIG_PUSH_HINTS},
                 {"push", LW_CONFIG_PUSH_PUSH},
                 {"push+hints", LW_CONFIG_PUSH_PUSH_HINTS},
                 {"learned-hints", LW_CONFIG_PUSH_LEARNED_HINTS},
                 {"cache-aware", LW_CONFIG_PUSH_CACHE_AWARE}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].policy;
            return true;
        }
    }
    return false;
}

/* `push: POLICY` or a mapping {policy, h1_hints, max_per_request, max_per_connection}. */
static void load_push(struct loader *ld, yaml_node_t *node, struct lw_config_push *p)
{
    enum { POLICY, H1_HINTS, PER_REQUEST, PER_CONNECTION, N };
    static const char *const keys[N] = {"policy", "h1_hints", "max_per_request", "max_per_connection"};
    yaml_node_t *v[N];
    const char *s = scalar(node);
    yaml_node_t *policy = node;

    if (node->type == YAML_MAPPING_NODE) {
        if (!read_mapping(ld, node, "'push'", "in push", keys, N, v)) {
            return;
        }
        policy = v[POLICY];
        get_bool(ld, v[H1_HINTS], "h1_hints", &p->h1_hints);
        get_uint(ld, v[PER_REQUEST], "max_per_request", 0, 1000, &p->max_per_request);
        get_uint(ld, v[PER_CONNECTION], "max_per_connection", 0, 100000, &p->max_per_connection);
        s = policy != NULL ? scalar(policy) : NULL;
    }
    if (policy != NULL && (s == NULL || !parse_push_policy(s, &p->policy))) {
        fail(ld, policy, "'push' policy must be one of none, hints, push, push+hints, learned-hints, cache-aware");
    }
}

static bool is_token(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_' || *s == '.')) {
            return false;
        }
    }
    return true;
}

static void load_arm(struct loader *ld, yaml_node_t *node, struct lw_config_arm *a)
{
    enum { NAME, WEIGHT, POLICY, N };
    static const char *const keys[N] = {"name", "weight", "policy"};
    yaml_node_t *v[N];
    const char *s;

    a->weight = 1;
    if (!read_mapping(ld, node, "an arm", "in arm", keys, N, v)) {
        return;
    }
    if (v[NAME] == NULL) {
        fail(ld, node, "missing required key 'name' in arm");
    } else if ((s = get_string(ld, v[NAME], "name")) != NULL) {
        if (!is_token(s)) {
            fail(ld, v[NAME], "arm name '%s' must be letters, digits, '-', '_' or '.'", s);
        } else {
            a->name = lw_strdup(s);
        }
    }
    get_uint(ld, v[WEIGHT], "weight", 0, 1000000, &a->weight);
    if (v[POLICY] == NULL) {
        fail(ld, node, "missing required key 'policy' in arm");
    } else if ((s = scalar(v[POLICY])) == NULL || !parse_push_policy(s, &a->policy)) {
        fail(ld, v[POLICY], "'policy' must be one of none, hints, push, push+hints, learned-hints, cache-aware");
    }
}

static void load_experiment(struct loader *ld, yaml_node_t *node, struct lw_config_experiment *e)
{
    enum { NAME, SEED, ARMS, N };
    static const char *const keys[N] = {"name", "seed", "arms"};
    yaml_node_t *v[N];
    const char *s;

    if (!read_mapping(ld, node, "an experiment", "in experiment", keys, N, v)) {
        return;
    }
    if (v[NAME] == NULL) {
        fail(ld, node, "missing required key 'name' in experiment");
    } else if ((s = get_string(ld, v[NAME], "name")) != NULL) {
        if (!is_token(s)) {
            fail(ld, v[NAME], "experiment name '%s' must be letters, digits, '-', '_' or '.'", s);
        } else {
            e->name = lw_strdup(s);
            size_t len = strlen(s) + 8;
            e->cookie = lw_malloc(len);
            snprintf(e->cookie, len, "lw_exp_%s", s);
        }
    }
    uint32_t seed = 0;
    get_uint(ld, v[SEED], "seed", 0, UINT32_MAX, &seed);
    e->seed = seed;
    if (v[ARMS] == NULL) {
        fail(ld, node, "missing required key 'arms' in experiment");
        return;
    }
    if (!check_list(ld, v[ARMS], "arms")) {
        return;
    }
    e->num_arms = list_len(v[ARMS]);
    e->arms = lw_calloc(e->num_arms, sizeof(*e->arms));
    uint64_t total = 0; /* arms are at most 1,000,000 each: no file holds enough of them to wrap this */
    for (size_t i = 0; i < e->num_arms; i++) {
        yaml_node_t *item = list_item(ld, v[ARMS], i);
        load_arm(ld, item, &e->arms[i]);
        total += e->arms[i].weight;
        for (size_t j = 0; j < i; j++) {
            if (e->arms[i].name != NULL && e->arms[j].name != NULL && strcmp(e->arms[i].name, e->arms[j].name) == 0) {
                fail(ld, item, "duplicate arm name '%s'", e->arms[i].name);
            }
        }
    }
    /* A client's arm is its hash modulo the total, taken as a uint32_t: a larger sum would
     * wrap and hand every client to whichever arms the wrapped total still reaches. */
    if (total == 0) {
        fail(ld, v[ARMS], "the arms' weights add up to 0");
    } else if (total > UINT32_MAX) {
        fail(ld, v[ARMS], "the arms' weights add up to %" PRIu64 ", more than %" PRIu32, total, UINT32_MAX);
    } else {
        e->total_weight = (uint32_t)total;
    }
}

static void load_experiments(struct loader *ld, yaml_node_t *seq)
{
    struct lw_config *cfg = ld->cfg;
    cfg->num_metric_slots = 1;
    if (seq == NULL || !check_list(ld, seq, "experiments")) {
        return;
    }
    cfg->num_experiments = list_len(seq);
    cfg->experiments = lw_calloc(cfg->num_experiments, sizeof(*cfg->experiments));
    for (size_t i = 0; i < cfg->num_experiments; i++) {
        yaml_node_t *item = list_item(ld, seq, i);
        struct lw_config_experiment *e = &cfg->experiments[i];
        load_experiment(ld, item, e);
        e->first_slot = cfg->num_metric_slots;
        cfg->num_metric_slots += e->num_arms;
        for (size_t j = 0; j < i; j++) {
            if (e->name != NULL && cfg->experiments[j].name != NULL && strcmp(e->name, cfg->experiments[j].name) == 0) {
                fail(ld, item, "duplicate experiment name '%s'", e->name);
            }
        }
    }
}

static void load_admin(struct loader *ld, yaml_node_t *node)
{
    enum { ADDRESS, N };
    static const char *const keys[N] = {"address"};
    yaml_node_t *v[N];

    if (!read_mapping(ld, node, "'admin'", "in admin", keys, N, v)) {
        return;
    }
    if (v[ADDRESS] == NULL) {
        fail(ld, node, "missing required key 'address' in admin");
        return;
    }
    parse_address(ld, v[ADDRESS], true, &ld->cfg->admin_host, &ld->cfg->admin_port);
}

static void load_route(struct loader *ld, yaml_node_t *node, struct lw_config_route *r)
{
    enum { HOST, PATH, BACKEND, PUSH, EXPERIMENT, N };
    static const char *const keys[N] = {"host", "path", "backend", "push", "experiment"};
    yaml_node_t *v[N];
    const char *s;
    struct lw_config *cfg = ld->cfg;

    push_defaults(&r->push);
    if (!read_mapping(ld, node, "a route", "in route", keys, N, v)) {
        return;
    }
    if (v[PUSH] != NULL) {
        load_push(ld, v[PUSH], &r->push);
    }
    if (v[EXPERIMENT] != NULL && (s = get_string(ld, v[EXPERIMENT], "experiment")) != NULL) {
        for (size_t i = 0; i < cfg->num_experiments && r->experiment == NULL; i++) {
            if (cfg->experiments[i].name != NULL && strcmp(cfg->experiments[i].name, s) == 0) {
                r->experiment = &cfg->experiments[i];
            }
        }
        if (r->experiment == NULL) {
            fail(ld, v[EXPERIMENT], "unknown experiment '%s' in route", s);
        }
    }
    if (v[HOST] != NULL) {
        r->host = get_route_host(ld, v[HOST]);
    }
    if (v[PATH] != NULL && (s = get_string(ld, v[PATH], "path")) != NULL) {
        if (s[0] != '/') {
            fail(ld, v[PATH], "'path' must start with '/'");
        } else {
            r->path_prefix = lw_strdup(s);
        }
    }
    if (v[BACKEND] == NULL) {
        fail(ld, node, "missing required key 'backend' in route");
    } else if ((s = get_string(ld, v[BACKEND], "backend")) != NULL) {
        for (size_t i = 0; i < cfg->num_backends && r->backend == NULL; i++) {
            if (cfg->backends[i].name != NULL && strcmp(cfg->backends[i].name, s) == 0) {
                r->backend = &cfg->backends[i];
            }
        }
        /* With no backends at all that is already reported, and every route would repeat it. */
        if (r->backend == NULL && cfg->num_backends > 0) {
            fail(ld, v[BACKEND], "unknown backend '%s' in route", s);
        }
    }
}

/* Runs after the backends so that routes can point into their final array. */
static void load_routes(struct loader *ld, yaml_node_t *root, yaml_node_t *seq)
{
    struct lw_config *cfg = ld->cfg;

    if (seq == NULL) {
        if (cfg->num_backends > 1) {
            fail(ld, root, "'routes' is required when there are several backends");
        } else if (cfg->num_backends == 1) {
            cfg->routes = lw_calloc(1, sizeof(*cfg->routes));
            cfg->num_routes = 1;
            cfg->routes[0].backend = &cfg->backends[0];
            cfg->routes[0].path_prefix = lw_strdup("/");
            push_defaults(&cfg->routes[0].push);
        }
        return;
    }
    if (!check_list(ld, seq, "routes")) {
        return;
    }
    cfg->num_routes = list_len(seq);
    cfg->routes = lw_calloc(cfg->num_routes, sizeof(*cfg->routes));
    for (size_t i = 0; i < cfg->num_routes; i++) {
        load_route(ld, list_item(ld, seq, i), &cfg->routes[i]);
        if (cfg->routes[i].path_prefix == NULL) {
            cfg->routes[i].path_prefix = lw_strdup("/");
        }
    }
}

static void load_workers(struct loader *ld, yaml_node_t *n)
{
    const char *s = scalar(n);
    uint64_t v;
    if (n == NULL || (s != NULL && strcmp(s, "auto") == 0)) {
        return;
    }
    bool negative = s != NULL && s[0] == '-' && parse_uint(s + 1, &v);
    if (s == NULL || (!negative && !parse_uint(s, &v))) {
        fail(ld, n, "'workers' must be an integer or \"auto\"");
    } else if (negative || v < 1 || v > 1024) {
        fail(ld, n, "'workers' must be between 1 and 1024, or \"auto\"");
    } else {
        ld->cfg->workers = (uint32_t)v;
    }
}

static void load_root(struct loader *ld, yaml_node_t *root)
{
    enum { WORKERS, LOG, DRAIN, LIMITS, LISTENERS, BACKENDS, ROUTES, EXPERIMENTS, ADMIN, N };
    static const char *const keys[N] = {"workers",  "log",    "drain_timeout", "limits", "listeners",
                                        "backends", "routes", "experiments",   "admin"};
    yaml_node_t *v[N];

    if (!read_mapping(ld, root, "the top level", "at the top level", keys, N, v)) {
        return;
    }
    load_workers(ld, v[WORKERS]);
    if (v[LOG] != NULL) {
        load_log(ld, v[LOG]);
    }
    get_duration(ld, v[DRAIN], "drain_timeout", 0, UINT32_MAX, &ld->cfg->drain_timeout_ms);
    if (v[LIMITS] != NULL) {
        load_limits(ld, v[LIMITS]);
    }
    if (v[LISTENERS] == NULL) {
        fail(ld, root, "missing required key 'listeners' at the top level");
    } else {
        load_listeners(ld, v[LISTENERS]);
    }
    if (v[BACKENDS] == NULL) {
        fail(ld, root, "missing required key 'backends' at the top level");
    } else {
        load_backends(ld, v[BACKENDS]);
    }
    load_experiments(ld, v[EXPERIMENTS]);
    if (v[ADMIN] != NULL) {
        load_admin(ld, v[ADMIN]);
    }
    load_routes(ld, root, v[ROUTES]);
}

/* ---- entry points ---- */

static struct lw_config *new_config(const char *name)
{
    struct lw_config *c = lw_calloc(1, sizeof(*c));
    c->source = lw_strdup(name);
    c->log_level = LW_LOG_INFO;
    c->drain_timeout_ms = 10 * LW_CONFIG_SECOND_MS;
    c->limits.max_header_bytes = 64 * LW_CONFIG_KIB;
    c->limits.max_headers = 100;
    c->limits.max_concurrent_streams = 100;
    c->limits.client_idle_timeout_ms = 60 * LW_CONFIG_SECOND_MS;
    c->limits.client_header_timeout_ms = 10 * LW_CONFIG_SECOND_MS;
    c->limits.max_buffered_bytes = 64 * LW_CONFIG_KIB;
    return c;
}

static void syntax_error(struct loader *ld, const yaml_parser_t *parser)
{
    size_t line = parser->problem_mark.line + 1, col = parser->problem_mark.column + 1;
    const char *problem = parser->problem != NULL ? parser->problem : "invalid YAML";

    if (parser->error == YAML_MEMORY_ERROR) {
        lw_log_error("out of memory parsing %s", ld->name);
        abort();
    }
    /* Reader errors (bad UTF-8, control characters) carry only a byte offset. */
    if (parser->error == YAML_READER_ERROR) {
        line = 1;
        col = 1;
        for (size_t i = 0; i < parser->problem_offset && i < ld->len; i++) {
            unsigned char c = (unsigned char)ld->text[i];
            if (c == '\n') {
                line++;
                col = 1;
            } else if ((c & 0xc0) != 0x80) {
                col++;
            }
        }
    }
    if (parser->context != NULL) {
        fail_at(ld, line, col, "%s %s", problem, parser->context);
    } else {
        fail_at(ld, line, col, "%s", problem);
    }
}

static int load(const char *text, size_t len, const char *name, const char *base_dir, struct lw_config **out,
                struct lw_config_errors *errs)
{
    struct loader ld = {.name = name, .text = text, .len = len, .base_dir = base_dir};
    yaml_parser_t parser;
    yaml_document_t extra;
    yaml_node_t *root;
    bool have_doc = false;
    int rc;

    *out = NULL;
    ld.cfg = new_config(name);
    if (!yaml_parser_initialize(&parser)) {
        lw_log_error("out of memory initializing libyaml");
        abort();
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &ld.doc)) {
        syntax_error(&ld, &parser);
        goto Exit;
    }
    have_doc = true;
    root = yaml_document_get_root_node(&ld.doc);
    if (root == NULL) {
        fail_at(&ld, 1, 1, "empty configuration");
        goto Exit;
    }
    mark_alias_uses(&ld);
    load_root(&ld, root);
    /* A second document would be ignored silently, which is never what its author meant. */
    if (!yaml_parser_load(&parser, &extra)) {
        syntax_error(&ld, &parser);
        goto Exit;
    }
    root = yaml_document_get_root_node(&extra);
    if (root != NULL) {
        fail(&ld, root, "only one YAML document is allowed");
    }
    yaml_document_delete(&extra);

Exit:
    if (have_doc) {
        yaml_document_delete(&ld.doc); /* the uses share what it frees, and own nothing */
    }
    free(ld.uses);
    yaml_parser_delete(&parser);
    report(&ld, errs);
    if (errs->count > 0) {
        free_config(ld.cfg);
        rc = LW_EINVAL;
    } else {
        __atomic_store_n(&ld.cfg->_refs, 1, __ATOMIC_RELAXED);
        *out = ld.cfg;
        rc = 0;
    }
    return rc;
}

int lw_config_load_string(const char *text, size_t len, const char *name, struct lw_config **out,
                          struct lw_config_errors *errs)
{
    struct lw_config_errors local = {0};
    if (errs == NULL) {
        errs = &local;
    }
    errs->msgs = NULL;
    errs->count = 0;
    int rc = load(text, len, name, NULL, out, errs);
    lw_config_errors_dispose(&local);
    return rc;
}

/* Returns 0 or an errno value. */
static int read_file(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int err = 0;
    size_t cap = 4096, n = 0;
    char *buf = NULL;

    if (fd < 0) {
        err = errno;
        goto Exit;
    }
    buf = lw_malloc(cap);
    for (;;) {
        if (n == cap) {
            /* A config file is a few kilobytes; anything this big is the wrong file (or /dev/zero). */
            if (cap >= LW_CONFIG_MAX_FILE_BYTES) {
                err = EFBIG;
                goto Exit;
            }
            cap *= 2;
            buf = lw_realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            err = errno;
            goto Exit;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }

Exit:
    if (fd >= 0) {
        close(fd);
    }
    if (err != 0) {
        free(buf);
        buf = NULL;
        n = 0;
    }
    *text = buf;
    *len = n;
    return err;
}

int lw_config_load_file(const char *path, struct lw_config **out, struct lw_config_errors *errs)
{
    struct lw_config_errors local = {0};
    char *text = NULL, *dir = NULL;
    size_t len;
    int rc, err;

    if (errs == NULL) {
        errs = &local;
    }
    errs->msgs = NULL;
    errs->count = 0;
    *out = NULL;
    err = read_file(path, &text, &len);
    if (err != 0) {
        add_error(errs, format("%s: cannot read: %s", path, strerror(err)));
        rc = LW_EIO;
        goto Exit;
    }
    const char *slash = strrchr(path, '/');
    if (slash != NULL) {
        dir = slash == path ? lw_strdup("/") : lw_strndup(path, (size_t)(slash - path));
    }
    rc = load(text, len, path, dir, out, errs);

Exit:
    free(text);
    free(dir);
    lw_config_errors_dispose(&local);
    return rc;
}

struct lw_config *lw_config_ref(struct lw_config *c)
{
    if (c != NULL) {
        __atomic_add_fetch(&c->_refs, 1, __ATOMIC_RELAXED);
    }
    return c;
}

/* Release ordering makes every thread's reads of the snapshot happen before the free; the
 * acquire on the last drop makes the freeing thread see them. */
void lw_config_unref(struct lw_config *c)
{
    if (c != NULL && __atomic_sub_fetch(&c->_refs, 1, __ATOMIC_ACQ_REL) == 0) {
        free_config(c);
    }
}

static bool host_matches(const char *pattern, const char *host, size_t host_len)
{
    size_t plen;
    if (pattern == NULL) {
        return true;
    }
    if (pattern[0] == '*') {
        /* ".example.com" must be a proper suffix: "*.example.com" does not match the apex. */
        const char *suffix = pattern + 1;
        plen = strlen(suffix);
        return host_len > plen && strncasecmp(host + host_len - plen, suffix, plen) == 0;
    }
    plen = strlen(pattern);
    return host_len == plen && strncasecmp(host, pattern, plen) == 0;
}

const struct lw_config_route *lw_config_route_match(const struct lw_config *c, const char *host, size_t host_len,
                                                    const char *path, size_t path_len)
{
    if (host == NULL) {
        host_len = 0;
    }
    /* "example.com." is the same name as "example.com" (the root label made explicit). */
    if (host_len > 0 && host[host_len - 1] == '.') {
        host_len--;
    }
    for (size_t i = 0; i < c->num_routes; i++) {
        const struct lw_config_route *r = &c->routes[i];
        size_t plen = strlen(r->path_prefix);
        if ((r->host == NULL || host_len > 0) && host_matches(r->host, host, host_len) && path_len >= plen &&
            memcmp(path, r->path_prefix, plen) == 0) {
            return r;
        }
    }
    return NULL;
}
