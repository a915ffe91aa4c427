/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for config/config: the embedded default, every key reaching the snapshot, each
 * error path with its exact "file:line:col: message", route matching and reference counting.
 * Runs with tests/ as the working directory so that data/ and ../examples/ resolve.
 */
#include "config/config.h"

#include <dirent.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/tests/tap.h"

/* A valid tail appended after the part under test, so error lines are those of the head. */
#define BACKEND_TAIL "backends:\n  - name: app\n    members: [127.0.0.1:8080]\n"
#define LISTENER_HEAD "listeners:\n  - address: 127.0.0.1:8443\n"

static void print_errors(const struct lw_config_errors *e)
{
    for (size_t i = 0; i < e->count; i++) {
        printf("#   got: %s\n", e->msgs[i]);
    }
}

static void check_errors(int rc, int want_rc, struct lw_config *c, struct lw_config_errors *e, const char *const *want,
                         size_t nwant, const char *what)
{
    bool ok = rc == want_rc && c == NULL && e->count == nwant;
    for (size_t i = 0; ok && i < nwant; i++) {
        ok = strcmp(e->msgs[i], want[i]) == 0;
    }
    TAP_OK(ok, "%s", what);
    if (!ok) {
        printf("#   rc %d, %zu messages, want %zu:\n", rc, e->count, nwant);
        for (size_t i = 0; i < nwant; i++) {
            printf("#   want: %s\n", want[i]);
        }
        print_errors(e);
    }
    lw_config_unref(c);
    lw_config_errors_dispose(e);
}

static void expect_string_errors(const char *yaml, const char *const *want, size_t nwant, const char *what)
{
    struct lw_config *c = NULL;
    struct lw_config_errors e;
    int rc = lw_config_load_string(yaml, strlen(yaml), "t.yaml", &c, &e);
    check_errors(rc, LW_EINVAL, c, &e, want, nwant, what);
}

static void expect_file_errors(const char *path, int want_rc, const char *const *want, size_t nwant, const char *what)
{
    struct lw_config *c = NULL;
    struct lw_config_errors e;
    int rc = lw_config_load_file(path, &c, &e);
    check_errors(rc, want_rc, c, &e, want, nwant, what);
}

#define EXPECT_ERRORS(yaml, what, ...)                                                                                 \
    do {                                                                                                               \
        const char *const want_[] = {__VA_ARGS__};                                                                     \
        expect_string_errors((yaml), want_, LW_ARRAY_LEN(want_), (what));                                              \
    } while (0)

#define EXPECT_FILE_ERRORS(path, rc, what, ...)                                                                        \
    do {                                                                                                               \
        const char *const want_[] = {__VA_ARGS__};                                                                     \
        expect_file_errors((path), (rc), want_, LW_ARRAY_LEN(want_), (what));                                          \
    } while (0)

static struct lw_config *load_ok(const char *yaml, const char *what)
{
    struct lw_config *c = NULL;
    struct lw_config_errors e;
    int rc = lw_config_load_string(yaml, strlen(yaml), "t.yaml", &c, &e);
    TAP_OK(rc == 0 && c != NULL && e.count == 0, "%s", what);
    print_errors(&e);
    lw_config_errors_dispose(&e);
    return c;
}

static bool str_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void test_default(void)
{
    const char *text = lw_config_default_text();
    struct lw_config *c = NULL;
    struct lw_config_errors e;
    int rc = lw_config_load_string(text, strlen(text), "<default>", &c, &e);
    TAP_OK(rc == 0 && c != NULL && e.count == 0, "the embedded default loads");
    print_errors(&e);
    lw_config_errors_dispose(&e);
    if (c == NULL) {
        return;
    }
    TAP_OK(strstr(text, "listeners:") != NULL, "the embedded default is default.yaml's text");
    TAP_OK(str_eq(c->source, "<default>"), "source names the default");
    TAP_OK(c->workers == 0 && c->log_level == LW_LOG_INFO && c->error_log == NULL && c->access_log == NULL,
           "default workers auto, level info, logs to stderr and stdout");
    TAP_EQ_INT(c->drain_timeout_ms, 10000, "default drain_timeout 10s");
    TAP_OK(c->limits.max_header_bytes == 65536 && c->limits.max_headers == 100 &&
               c->limits.max_concurrent_streams == 100 && c->limits.client_idle_timeout_ms == 60000 &&
               c->limits.client_header_timeout_ms == 10000 && c->limits.max_buffered_bytes == 65536,
           "default limits");
    TAP_OK(c->num_listeners == 1 && str_eq(c->listeners[0].host, "127.0.0.1") && c->listeners[0].port == 8443 &&
               c->listeners[0].tls && c->listeners[0].num_certs == 0 && c->listeners[0].session_tickets &&
               c->listeners[0].ticket_rotation_ms == 3600000,
           "default listener: TLS on 127.0.0.1:8443 with a generated certificate");
    const struct lw_config_backend *b = c->num_backends == 1 ? &c->backends[0] : NULL;
    TAP_OK(b != NULL && str_eq(b->name, "app") && b->num_members == 1 && str_eq(b->members[0].host, "127.0.0.1") &&
               b->members[0].port == 8080 && b->members[0].weight == 1,
           "default backend app -> 127.0.0.1:8080");
    TAP_OK(b != NULL && b->max_connections == 128 && b->queue == 1024 && b->connect_timeout_ms == 3000 &&
               b->response_timeout_ms == 60000 && b->idle_timeout_ms == 30000 && b->resolve_interval_ms == 30000 &&
               b->max_fails == 3 && b->fail_backoff_ms == 10000 && b->retries == 2,
           "default backend settings");
    TAP_OK(c->num_routes == 1 && c->routes[0].host == NULL && str_eq(c->routes[0].path_prefix, "/") &&
               c->routes[0].backend == b,
           "default route: any host, / -> app");
    lw_config_unref(c);
}

static void test_values(void)
{
    struct lw_config *c = NULL;
    struct lw_config_errors e;
    int rc = lw_config_load_file("data/values.yaml", &c, &e);
    TAP_OK(rc == 0 && c != NULL, "a file setting every key loads");
    print_errors(&e);
    lw_config_errors_dispose(&e);
    if (c == NULL) {
        return;
    }
    TAP_OK(str_eq(c->source, "data/values.yaml"), "source is the file name");
    TAP_OK(c->workers == 4 && c->log_level == LW_LOG_DEBUG && str_eq(c->error_log, "/var/log/lowat/error.log") &&
               str_eq(c->access_log, "off"),
           "workers and log");
    TAP_EQ_INT(c->drain_timeout_ms, 250, "250ms is a duration in milliseconds");
    TAP_OK(c->limits.max_header_bytes == 32 * 1024 && c->limits.max_headers == 50 &&
               c->limits.max_concurrent_streams == 250 && c->limits.client_idle_timeout_ms == 120000 &&
               c->limits.client_header_timeout_ms == 5000 && c->limits.max_buffered_bytes == 1024 * 1024,
           "limits: k and m sizes, minutes, bare seconds");
    TAP_OK(c->num_listeners == 3, "three listeners");
    if (c->num_listeners == 3) {
        const struct lw_config_listener *l = c->listeners;
        TAP_OK(str_eq(l[0].host, "0.0.0.0") && l[0].port == 0 && !l[0].tls && l[0].line == 16,
               "*:0 is every IPv4 address, cleartext, on line 16");
        TAP_OK(str_eq(l[1].host, "0.0.0.0") && l[1].tls && l[1].num_certs == 0, ":0 with tls: yes");
        TAP_OK(str_eq(l[2].host, "::") && l[2].port == 8443 && l[2].tls && !l[2].session_tickets &&
                   l[2].ticket_rotation_ms == 30 * 60000,
               "[::]:8443 with tls options");
        TAP_OK(l[2].num_certs == 2 && str_eq(l[2].certs[0].cert_file, "data/example.com.pem") &&
                   str_eq(l[2].certs[0].key_file, "data/example.com.key") &&
                   str_eq(l[2].certs[1].cert_file, "data/example.org.pem") &&
                   str_eq(l[2].certs[1].key_file, "/dev/null"),
               "certificate paths resolved against the file's directory, absolute ones kept");
    }
    TAP_OK(c->num_backends == 2, "two backends");
    if (c->num_backends == 2) {
        const struct lw_config_backend *b = &c->backends[0];
        TAP_OK(b->num_members == 2 && str_eq(b->members[0].host, "app.internal") && b->members[0].port == 8080 &&
                   b->members[0].weight == 1 && str_eq(b->members[1].host, "fd00::1") && b->members[1].port == 9000 &&
                   b->members[1].weight == 7,
               "members as a string and as a mapping with a weight");
        TAP_OK(b->max_connections == 16 && b->queue == 0 && b->connect_timeout_ms == 1500 &&
                   b->response_timeout_ms == 2 * 3600000 && b->idle_timeout_ms == 45000 &&
                   b->resolve_interval_ms == 60000 && b->max_fails == 5 && b->fail_backoff_ms == 1000 &&
                   b->retries == 0,
               "backend settings");
    }
    TAP_OK(c->num_routes == 2 && str_eq(c->routes[0].host, "api.example.com") &&
               str_eq(c->routes[0].path_prefix, "/v1/") && c->routes[0].backend == &c->backends[1] &&
               c->routes[1].host == NULL && str_eq(c->routes[1].path_prefix, "/") &&
               c->routes[1].backend == &c->backends[0],
           "routes in file order, host lower-cased, path defaults to /");
    lw_config_unref(c);
}

static void test_small_forms(void)
{
    struct lw_config *c = load_ok("listeners: [{address: \"[::1]:0\"}, {address: \"[::1]:0\"}]\n"
                                  "log: {access: stderr, error: stderr}\n"
                                  "workers: auto\n" BACKEND_TAIL,
                                  "flow style, port 0 twice, stderr logs");
    if (c != NULL) {
        TAP_OK(c->num_listeners == 2 && str_eq(c->listeners[1].host, "::1") && c->error_log == NULL &&
                   str_eq(c->access_log, "stderr") && c->workers == 0,
               "[::1]:0 twice is no duplicate; error stderr -> NULL, access stderr kept");
        TAP_OK(c->num_routes == 1 && c->routes[0].host == NULL && str_eq(c->routes[0].path_prefix, "/") &&
                   c->routes[0].backend == &c->backends[0],
               "one backend and no routes: one catch-all route");
        lw_config_unref(c);
    }
    c = load_ok(LISTENER_HEAD "    tls: {session_tickets: On}\ndrain_timeout: 0\n" BACKEND_TAIL,
                "a tls mapping without certificates");
    if (c != NULL) {
        TAP_OK(c->listeners[0].tls && c->listeners[0].num_certs == 0 && c->listeners[0].session_tickets &&
                   c->drain_timeout_ms == 0,
               "tls mapping means TLS with a generated certificate; drain_timeout 0 allowed");
        lw_config_unref(c);
    }
    c = NULL;
    int rc = lw_config_load_file("data/certs.yaml", &c, NULL);
    TAP_OK(rc == 0 && c != NULL && str_eq(c->listeners[0].certs[0].key_file, "data/./example.net.key"),
           "errs may be NULL; ./ paths resolve too");
    lw_config_unref(c);
    rc = lw_config_load_string("", 0, "t.yaml", &c, NULL);
    TAP_OK(rc == LW_EINVAL && c == NULL, "a failed load with errs NULL frees everything");
}

static void test_syntax_errors(void)
{
    EXPECT_ERRORS("workers: 2\nlog: {level: info}\n  bad: x\n", "syntax error: libyaml's problem at its mark",
                  "t.yaml:3:3: did not find expected key while parsing a block mapping");
    EXPECT_ERRORS("listeners: [1, 2\n", "syntax error: unclosed flow sequence",
                  "t.yaml:2:1: did not find expected ',' or ']' while parsing a flow sequence");
    EXPECT_ERRORS("workers: \x01\n", "reader error: position computed from the byte offset",
                  "t.yaml:1:10: control characters are not allowed");
    EXPECT_ERRORS("", "empty file", "t.yaml:1:1: empty configuration");
    EXPECT_ERRORS("# nothing here\n\n", "a file with only comments is empty", "t.yaml:1:1: empty configuration");
    EXPECT_ERRORS("\n- a\n- b\n", "top level is a list", "t.yaml:2:1: the top level must be a mapping");
    EXPECT_ERRORS("just text\n", "top level is a scalar", "t.yaml:1:1: the top level must be a mapping");
    EXPECT_ERRORS(LISTENER_HEAD BACKEND_TAIL "---\nworkers: 2\n", "a second document",
                  "t.yaml:7:1: only one YAML document is allowed");
}

static void test_key_errors(void)
{
    EXPECT_ERRORS(LISTENER_HEAD "    foo: 1\n" BACKEND_TAIL, "unknown key in a listener",
                  "t.yaml:3:5: unknown key 'foo' in listener");
    EXPECT_ERRORS("worker: 2\n" LISTENER_HEAD BACKEND_TAIL, "unknown key at the top level",
                  "t.yaml:1:1: unknown key 'worker' at the top level");
    EXPECT_ERRORS(LISTENER_HEAD "    tls: {certificate: []}\n" BACKEND_TAIL, "unknown key in tls",
                  "t.yaml:3:11: unknown key 'certificate' in tls");
    EXPECT_ERRORS("workers: 2\nworkers: 3\n" LISTENER_HEAD BACKEND_TAIL, "duplicate key at the top level",
                  "t.yaml:2:1: duplicate key 'workers' at the top level");
    EXPECT_ERRORS(LISTENER_HEAD "    address: 127.0.0.1:80\n" BACKEND_TAIL, "duplicate key in a listener",
                  "t.yaml:3:5: duplicate key 'address' in listener");
    EXPECT_ERRORS("? [a]\n: 1\n" LISTENER_HEAD BACKEND_TAIL, "a key that is not a string",
                  "t.yaml:1:3: keys at the top level must be strings");
    EXPECT_ERRORS("workers: 1\n" BACKEND_TAIL, "missing listeners points at the top mapping",
                  "t.yaml:1:1: missing required key 'listeners' at the top level");
    EXPECT_ERRORS(LISTENER_HEAD, "missing backends", "t.yaml:1:1: missing required key 'backends' at the top level");
    EXPECT_ERRORS("listeners:\n  - tls: true\n" BACKEND_TAIL, "missing address points at the listener mapping",
                  "t.yaml:2:5: missing required key 'address' in listener");
    EXPECT_ERRORS(LISTENER_HEAD "backends:\n  - members: [a:1]\n  - name: b\n", "missing name and members",
                  "t.yaml:1:1: 'routes' is required when there are several backends",
                  "t.yaml:4:5: missing required key 'name' in backend",
                  "t.yaml:5:5: missing required key 'members' in backend");
    EXPECT_ERRORS(LISTENER_HEAD BACKEND_TAIL "routes:\n  - path: /\n", "missing route backend",
                  "t.yaml:7:5: missing required key 'backend' in route");
    EXPECT_ERRORS(LISTENER_HEAD "    tls:\n      certificates:\n        - key: x.key\n" BACKEND_TAIL,
                  "missing cert in a certificate", "t.yaml:5:11: missing required key 'cert' in certificate",
                  "t.yaml:5:16: cannot read key 'x.key': No such file or directory");
}

static void test_type_errors(void)
{
    EXPECT_ERRORS("workers: many\n" LISTENER_HEAD BACKEND_TAIL, "workers not a number",
                  "t.yaml:1:10: 'workers' must be an integer or \"auto\"");
    EXPECT_ERRORS("workers: [1]\n" LISTENER_HEAD BACKEND_TAIL, "workers a list",
                  "t.yaml:1:10: 'workers' must be an integer or \"auto\"");
    EXPECT_ERRORS("workers: 0\n" LISTENER_HEAD BACKEND_TAIL, "workers 0",
                  "t.yaml:1:10: 'workers' must be between 1 and 1024, or \"auto\"");
    EXPECT_ERRORS("log: info\n" LISTENER_HEAD BACKEND_TAIL, "log not a mapping", "t.yaml:1:6: 'log' must be a mapping");
    EXPECT_ERRORS("log: {level: loud}\n" LISTENER_HEAD BACKEND_TAIL, "unknown log level",
                  "t.yaml:1:14: 'level' must be one of error, warn, info, debug");
    EXPECT_ERRORS("listeners: {address: 1.2.3.4:1}\n" BACKEND_TAIL, "listeners not a list",
                  "t.yaml:1:12: 'listeners' must be a list");
    EXPECT_ERRORS("listeners:\n  - 127.0.0.1:80\n" BACKEND_TAIL, "a listener that is a string",
                  "t.yaml:2:5: a listener must be a mapping");
    EXPECT_ERRORS(LISTENER_HEAD "    tls: [a]\n" BACKEND_TAIL, "tls a list",
                  "t.yaml:3:10: 'tls' must be true, false or a mapping");
    EXPECT_ERRORS(LISTENER_HEAD "backends:\n  - name: {a: 1}\n    members: [[a]]\n", "name a mapping, member a list",
                  "t.yaml:4:11: 'name' must be a string", "t.yaml:5:15: a member must be \"host:port\" or a mapping");
}

static void test_value_errors(void)
{
    EXPECT_ERRORS("limits:\n  max_headers: 0\n  max_concurrent_streams: 3000000000\n  max_header_bytes: 512\n"
                  "  max_buffered_bytes: 64kb\n  client_idle_timeout: 0\n" LISTENER_HEAD BACKEND_TAIL,
                  "limits out of range and malformed", "t.yaml:2:16: 'max_headers' must be between 1 and 10000",
                  "t.yaml:3:27: 'max_concurrent_streams' must be between 1 and 2147483647",
                  "t.yaml:4:21: 'max_header_bytes' must be between 1k and 16m",
                  "t.yaml:5:23: 'max_buffered_bytes' must be a size such as 512, 64k or 1m",
                  "t.yaml:6:24: 'client_idle_timeout' must be between 1ms and 4294967295ms");
    EXPECT_ERRORS("drain_timeout: 4294968s\n" LISTENER_HEAD BACKEND_TAIL, "a duration past uint32 milliseconds",
                  "t.yaml:1:16: 'drain_timeout' must be between 0ms and 4294967295ms");
    EXPECT_ERRORS("drain_timeout: 99999999999999999999999h\n" LISTENER_HEAD BACKEND_TAIL, "a huge duration",
                  "t.yaml:1:16: 'drain_timeout' must be between 0ms and 4294967295ms");
    EXPECT_ERRORS("drain_timeout: 1.5s\n" LISTENER_HEAD BACKEND_TAIL, "bad duration",
                  "t.yaml:1:16: 'drain_timeout' must be a duration such as 250ms, 10s, 5m or 1h");
    EXPECT_ERRORS(LISTENER_HEAD "    tls: {session_tickets: maybe, ticket_rotation: 500ms}\n" BACKEND_TAIL,
                  "bad bool, rotation too short", "t.yaml:3:28: 'session_tickets' must be true or false",
                  "t.yaml:3:52: 'ticket_rotation' must be between 1s and 168h");
    EXPECT_ERRORS(LISTENER_HEAD "backends:\n  - name: a\n    members: [{address: a:1, weight: 1001}]\n"
                                "    retries: -1\n    resolve_interval: 10ms\n",
                  "member weight, negative retries, resolve_interval",
                  "t.yaml:5:38: 'weight' must be between 1 and 1000",
                  "t.yaml:6:14: 'retries' must be between 0 and 100",
                  "t.yaml:7:23: 'resolve_interval' must be between 1s and 4294967295ms");
    EXPECT_ERRORS(LISTENER_HEAD BACKEND_TAIL "routes:\n  - {host: \"*.a:80\", path: x, backend: app}\n",
                  "bad route host and path", "t.yaml:7:12: 'host' must be a host name or \"*.suffix\", not '*.a:80'",
                  "t.yaml:7:28: 'path' must start with '/'");
}

static void test_address_errors(void)
{
    EXPECT_ERRORS("listeners:\n"
                  "  - address: 127.0.0.1\n"
                  "  - address: 127.0.0.1:65536\n"
                  "  - address: localhost:80\n"
                  "  - address: ::1:80\n"
                  "  - address: \"[zz]:80\"\n"
                  "  - address: \"[::1]80\"\n"
                  "  - address: 1.2.3.4:-1\n" BACKEND_TAIL,
                  "listener addresses", "t.yaml:2:14: bad address '127.0.0.1': expected \"host:port\"",
                  "t.yaml:3:14: bad address '127.0.0.1:65536': the port must be 0..65535",
                  "t.yaml:4:14: bad address 'localhost:80': a listener needs a literal IP address, not 'localhost'",
                  "t.yaml:5:14: bad address '::1:80': write IPv6 addresses in brackets, e.g. [::1]:8080",
                  "t.yaml:6:14: bad address '[zz]:80': 'zz' is not an IPv6 address",
                  "t.yaml:7:14: bad address '[::1]80': expected \"[IPv6]:port\"",
                  "t.yaml:8:14: bad address '1.2.3.4:-1': the port must be 0..65535");
    EXPECT_ERRORS(LISTENER_HEAD "backends:\n  - name: a\n    members:\n      - a.example:0\n      - :80\n"
                                "      - bad_host!:80\n      - a..b:80\n",
                  "member addresses", "t.yaml:6:9: bad address 'a.example:0': the port must be 1..65535",
                  "t.yaml:7:9: bad address ':80': the host is missing",
                  "t.yaml:8:9: bad address 'bad_host!:80': 'bad_host!' is not a host name or IP address",
                  "t.yaml:9:9: bad address 'a..b:80': 'a..b' is not a host name or IP address");
}

static void test_semantic_errors(void)
{
    EXPECT_ERRORS("listeners: []\nbackends: []\n", "empty listeners and backends",
                  "t.yaml:1:12: 'listeners' must have at least one entry",
                  "t.yaml:2:11: 'backends' must have at least one entry");
    EXPECT_ERRORS(LISTENER_HEAD "backends: []\nroutes: [{backend: app}]\n", "no backends: routes add no noise",
                  "t.yaml:3:11: 'backends' must have at least one entry");
    EXPECT_ERRORS(LISTENER_HEAD "backends:\n  - name: a\n    members: []\n", "empty members",
                  "t.yaml:5:14: 'members' must have at least one entry");
    EXPECT_ERRORS(LISTENER_HEAD "    tls:\n      certificates: []\n" BACKEND_TAIL "routes: []\n",
                  "empty certificates and routes", "t.yaml:4:21: 'certificates' must have at least one entry",
                  "t.yaml:8:9: 'routes' must have at least one entry");
    EXPECT_ERRORS(LISTENER_HEAD "backends:\n  - name: a\n    members: [a:1]\n  - name: b\n    members: [b:1]\n"
                                "  - name: a\n    members: [c:1]\n",
                  "duplicate backend name, and several backends without routes",
                  "t.yaml:1:1: 'routes' is required when there are several backends",
                  "t.yaml:8:11: duplicate backend name 'a' (also on line 4)");
    EXPECT_ERRORS("listeners:\n  - address: 127.0.0.1:80\n  - address: 10.0.0.1:80\n  - address: 127.0.0.1:80\n"
                  "  - address: \"[::1]:80\"\n  - address: \"[0:0::1]:80\"\n  - address: \"*:80\"\n"
                  "  - address: 0.0.0.0:80\n" BACKEND_TAIL,
                  "duplicate listener addresses, compared in canonical form",
                  "t.yaml:4:14: duplicate listener address '127.0.0.1:80' (also on line 2)",
                  "t.yaml:6:14: duplicate listener address '[0:0::1]:80' (also on line 5)",
                  "t.yaml:8:14: duplicate listener address '0.0.0.0:80' (also on line 7)");
    EXPECT_ERRORS(LISTENER_HEAD BACKEND_TAIL "routes:\n  - backend: app\n  - host: a.com\n    backend: ap\n",
                  "route naming an unknown backend", "t.yaml:9:14: unknown backend 'ap' in route");
}

static void test_file_errors(void)
{
    EXPECT_FILE_ERRORS("data/no-such-file.yaml", LW_EIO, "a missing file is LW_EIO: path: cannot read: reason",
                       "data/no-such-file.yaml: cannot read: No such file or directory");
    struct lw_config *c = (struct lw_config *)&c; /* not NULL, to see that a failed load clears it */
    struct lw_config_errors e;
    int rc = lw_config_load_file("data", &c, &e);
    TAP_EQ_INT(rc, LW_EIO, "a directory is LW_EIO");
    TAP_OK(c == NULL && e.count == 1 && str_eq(e.msgs[0], "data: cannot read: Is a directory"),
           "a directory: path: cannot read: reason");
    lw_config_errors_dispose(&e);
    EXPECT_FILE_ERRORS(
        "data/missing_cert.yaml", LW_EINVAL, "unreadable certificate and key files, resolved paths",
        "data/missing_cert.yaml:5:17: cannot read certificate 'data/nope.pem': No such file or directory",
        "data/missing_cert.yaml:8:16: cannot read key '/nonexistent/lowat.key': No such file or directory",
        "data/missing_cert.yaml:9:17: cannot read certificate 'data/.': Is a directory");
    EXPECT_FILE_ERRORS("data/many_errors.yaml", LW_EINVAL, "every problem in a file is reported, in file order",
                       "data/many_errors.yaml:2:10: 'workers' must be an integer or \"auto\"",
                       "data/many_errors.yaml:4:10: 'level' must be one of error, warn, info, debug",
                       "data/many_errors.yaml:5:3: unknown key 'color' in log",
                       "data/many_errors.yaml:6:16: 'drain_timeout' must be a duration such as 250ms, 10s, 5m or 1h",
                       "data/many_errors.yaml:8:16: 'max_headers' must be between 1 and 10000",
                       "data/many_errors.yaml:9:23: 'max_buffered_bytes' must be a size such as 512, 64k or 1m",
                       "data/many_errors.yaml:12:10: 'tls' must be true, false or a mapping",
                       "data/many_errors.yaml:13:14: duplicate listener address '127.0.0.1:8443' (also on line 11)",
                       "data/many_errors.yaml:14:5: missing required key 'address' in listener",
                       "data/many_errors.yaml:17:14: 'members' must have at least one entry",
                       "data/many_errors.yaml:18:11: duplicate backend name 'app' (also on line 16)",
                       "data/many_errors.yaml:20:18: bad address 'app.internal:http': the port must be 1..65535",
                       "data/many_errors.yaml:22:17: 'weight' must be between 1 and 1000",
                       "data/many_errors.yaml:23:14: 'retries' must be an integer",
                       "data/many_errors.yaml:24:5: missing required key 'name' in backend",
                       "data/many_errors.yaml:26:11: 'path' must start with '/'",
                       "data/many_errors.yaml:27:14: unknown backend 'nowhere' in route");
}

static const char *match(const struct lw_config *c, const char *host, const char *path)
{
    const struct lw_config_route *r =
        lw_config_route_match(c, host, host != NULL ? strlen(host) : 0, path, strlen(path));
    return r != NULL ? r->backend->name : "none";
}

static void test_route_match(void)
{
    struct lw_config *c = load_ok(LISTENER_HEAD "backends:\n"
                                                "  - {name: static, members: [s:1]}\n"
                                                "  - {name: api, members: [a:1]}\n"
                                                "  - {name: admin, members: [d:1]}\n"
                                                "  - {name: org, members: [o:1]}\n"
                                                "routes:\n"
                                                "  - {host: Static.Example.COM, backend: static}\n"
                                                "  - {host: \"*.example.com\", path: /api/, backend: api}\n"
                                                "  - {path: /admin/, backend: admin}\n"
                                                "  - {host: example.org, backend: org}\n",
                                  "a config with several routes loads");
    if (c == NULL) {
        return;
    }
    TAP_OK(str_eq(match(c, "static.example.com", "/x"), "static"), "exact host");
    TAP_OK(str_eq(match(c, "STATIC.example.Com", "/"), "static"), "exact host, any case");
    TAP_OK(str_eq(match(c, "a.example.com", "/api/v1"), "api"), "wildcard matches one label");
    TAP_OK(str_eq(match(c, "a.b.EXAMPLE.com", "/api/"), "api"), "wildcard matches several labels, any case");
    TAP_OK(str_eq(match(c, "example.com", "/api/x"), "none"), "wildcard does not match the bare suffix");
    TAP_OK(str_eq(match(c, "xexample.com", "/api/x"), "none"), "wildcard needs the dot");
    TAP_OK(str_eq(match(c, "a.example.com", "/api"), "none"), "path prefix is a plain prefix");
    TAP_OK(str_eq(match(c, "static.example.com", "/admin/"), "static"), "first match in file order wins");
    TAP_OK(str_eq(match(c, "anything.test", "/admin/users"), "admin"), "route without host matches any host");
    TAP_OK(str_eq(match(c, NULL, "/admin/"), "admin"), "no host at all matches only host-less routes");
    TAP_OK(str_eq(match(c, NULL, "/"), "none"), "no host and no host-less route for the path");
    TAP_OK(str_eq(match(c, "example.org.", "/"), "org"), "a trailing dot is the same name");
    TAP_OK(str_eq(match(c, "sub.example.org", "/"), "none"), "exact host does not match subdomains");
    const struct lw_config_route *r = lw_config_route_match(c, "example.orgXYZ", 11, "/zzz", 1);
    TAP_OK(r != NULL && str_eq(r->backend->name, "org"), "host and path lengths are honoured");
    lw_config_unref(c);
}

static void test_refcount(void)
{
    const char *text = lw_config_default_text();
    struct lw_config *c = NULL;
    lw_config_load_string(text, strlen(text), "<default>", &c, NULL);
    TAP_OK(c != NULL && __atomic_load_n(&c->_refs, __ATOMIC_RELAXED) == 1, "a new snapshot has one reference");
    if (c == NULL) {
        return;
    }
    /* TAP_OK evaluates its condition twice, so the calls happen outside it. */
    struct lw_config *r1 = lw_config_ref(c);
    struct lw_config *r2 = lw_config_ref(c);
    TAP_OK(r1 == c && r2 == c, "ref returns the snapshot");
    TAP_EQ_INT(__atomic_load_n(&c->_refs, __ATOMIC_RELAXED), 3, "each ref counts");
    lw_config_unref(c);
    lw_config_unref(c);
    TAP_EQ_INT(__atomic_load_n(&c->_refs, __ATOMIC_RELAXED), 1, "unref drops one; the snapshot is still alive");
    TAP_OK(c->num_backends == 1 && str_eq(c->backends[0].name, "app"), "still readable with one reference");
    lw_config_unref(c); /* the last one frees it: ASan reports a leak or a double free otherwise */
    lw_config_unref(NULL);
    struct lw_config *none = lw_config_ref(NULL);
    TAP_OK(none == NULL, "ref and unref accept NULL");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every annotated example must stay loadable: they are documentation that can rot. */
static void test_examples(void)
{
    DIR *d = opendir("../examples");
    char *names[64];
    size_t n = 0;
    struct dirent *de;
    TAP_OK(d != NULL, "the examples directory exists");
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL && n < LW_ARRAY_LEN(names)) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0) {
            names[n++] = lw_strdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    TAP_OK(n >= 3, "at least three examples (%zu)", n);
    for (size_t i = 0; i < n; i++) {
        char path[512];
        struct lw_config *c = NULL;
        struct lw_config_errors e;
        snprintf(path, sizeof(path), "../examples/%s", names[i]);
        int rc = lw_config_load_file(path, &c, &e);
        TAP_OK(rc == 0 && c != NULL, "example %s loads", names[i]);
        print_errors(&e);
        if (c != NULL && strcmp(names[i], "full.yaml") == 0) {
            TAP_OK(c->workers == 0 && c->drain_timeout_ms == 10000 && c->limits.max_header_bytes == 65536 &&
                       c->listeners[0].ticket_rotation_ms == 3600000 && c->backends[0].retries == 2 &&
                       c->num_routes == 3 &&
                       str_eq(c->listeners[0].certs[0].cert_file, "../examples/../tests/data/example.com.pem"),
                   "full.yaml shows the defaults");
        }
        if (c != NULL && strcmp(names[i], "sni.yaml") == 0) {
            TAP_OK(c->listeners[0].num_certs == 3 && str_eq(match(c, "www.example.org", "/"), "org") &&
                       str_eq(match(c, "example.net", "/"), "net") && str_eq(match(c, "other", "/"), "com"),
                   "sni.yaml has three certificates and routes by host");
        }
        lw_config_errors_dispose(&e);
        lw_config_unref(c);
        free(names[i]);
    }
}

/* Push policies, experiments, the admin listener and responsiveness settings. */
static void test_push_and_experiments(void)
{
    struct lw_config *c = load_ok("listeners: [{address: '127.0.0.1:0', responsiveness: {min_rtt: 50ms, max_cwnd: 40, queue_limit: false}}]\n"
                                  "backends: [{name: app, members: ['127.0.0.1:1']}]\n"
                                  "admin: {address: '127.0.0.1:0'}\n"
                                  "experiments:\n"
                                  "  - name: e1\n"
                                  "    seed: 9\n"
                                  "    arms: [{name: a, weight: 1, policy: hints}, {name: b, weight: 3, policy: cache-aware}]\n"
                                  "routes:\n"
                                  "  - {path: /x, backend: app, push: learned-hints}\n"
                                  "  - {path: /, backend: app, push: {policy: push, h1_hints: true, max_per_request: 2},"
                                  " experiment: e1}\n",
                                  "push policies, an experiment and admin load");
    if (c != NULL) {
        TAP_OK(c->listeners[0].responsiveness.enabled && c->listeners[0].responsiveness.min_rtt_ms == 50 &&
                   c->listeners[0].responsiveness.max_cwnd == 40 && !c->listeners[0].responsiveness.queue_limit,
               "responsiveness settings are read");
        TAP_OK(c->routes[0].push.policy == LW_CONFIG_PUSH_LEARNED_HINTS && c->routes[0].experiment == NULL,
               "a policy given by name");
        TAP_OK(c->routes[1].push.policy == LW_CONFIG_PUSH_PUSH && c->routes[1].push.h1_hints &&
                   c->routes[1].push.max_per_request == 2 && c->routes[1].push.max_per_connection == 100,
               "a push mapping, defaults filled in");
        TAP_OK(c->routes[1].experiment == &c->experiments[0], "a route refers to its experiment");
        const struct lw_config_experiment *e = &c->experiments[0];
        TAP_OK(str_eq(e->cookie, "lw_exp_e1") && e->seed == 9 && e->total_weight == 4 && e->num_arms == 2 &&
                   e->arms[1].policy == LW_CONFIG_PUSH_CACHE_AWARE,
               "the experiment and its arms");
        TAP_OK(e->first_slot == 1 && c->num_metric_slots == 3, "metric slots: none, then one per arm");
        TAP_OK(str_eq(c->admin_host, "127.0.0.1") && c->admin_port == 0, "the admin address");
        lw_config_unref(c);
    }
    c = load_ok("listeners: [{address: '127.0.0.1:0'}]\nbackends: [{name: app, members: ['127.0.0.1:1']}]\n",
                "no push settings");
    if (c != NULL) {
        TAP_OK(c->routes[0].push.policy == LW_CONFIG_PUSH_HINTS && c->admin_host == NULL && c->num_metric_slots == 1 &&
                   c->listeners[0].responsiveness.enabled && c->listeners[0].responsiveness.min_rtt_ms == 20 &&
                   c->listeners[0].responsiveness.queue_limit,
               "defaults: hints, no admin, responsiveness on from 20 ms with the queue limit");
        lw_config_unref(c);
    }
    EXPECT_ERRORS("listeners: [{address: '127.0.0.1:0', responsiveness: maybe}]\n"
                  "backends: [{name: app, members: ['127.0.0.1:1']}]\n"
                  "routes: [{path: /, backend: app, push: sometimes}]\n"
                  "experiments: [{name: e, arms: [{name: a, policy: push}, {name: a, policy: push}]}]\n"
                  "admin: {}\n",
                  "push, experiment and admin errors",
                  "t.yaml:1:54: 'responsiveness' must be true, false or a mapping",
                  "t.yaml:3:40: 'push' policy must be one of none, hints, push, push+hints, learned-hints, cache-aware",
                  "t.yaml:4:57: duplicate arm name 'a'", "t.yaml:5:8: missing required key 'address' in admin");
}

/* An experiment of n arms at 1,000,000 each and one more at `last`, its arms' list on line 9. */
static char *many_arms(size_t n, unsigned last)
{
    static const char head[] = LISTENER_HEAD BACKEND_TAIL "experiments:\n  - name: e\n    arms:\n";
    size_t cap = sizeof(head) + (n + 1) * 64;
    char *y = lw_malloc(cap);
    size_t len = (size_t)snprintf(y, cap, "%s", head);
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(y + len, cap - len, "      - {name: a%zu, weight: 1000000, policy: hints}\n", i);
    }
    snprintf(y + len, cap - len, "      - {name: last, weight: %u, policy: push}\n", last);
    return y;
}

/* The assignment takes a client's hash modulo the arms' total weight: a total past what it holds
 * must be refused, not wrapped to 0 or to a small sum that sends everyone to one arm. */
static void test_arm_weight_total(void)
{
    char *y = many_arms(4294, 967295);
    struct lw_config *c = load_ok(y, "arms adding up to 4294967295 load");
    TAP_OK(c != NULL && c->experiments[0].total_weight == UINT32_MAX && c->experiments[0].num_arms == 4295,
           "their total is kept whole");
    lw_config_unref(c);
    free(y);
    y = many_arms(4294, 967296);
    EXPECT_ERRORS(y, "arms adding up to 2^32 are refused, not wrapped to 0",
                  "t.yaml:9:7: the arms' weights add up to 4294967296, more than 4294967295");
    free(y);
    y = many_arms(4295, 0);
    EXPECT_ERRORS(y, "arms adding up to past 2^32 are refused, not wrapped to a small total",
                  "t.yaml:9:7: the arms' weights add up to 4295000000, more than 4294967295");
    free(y);
}

/* An error in what an alias brings points at the alias, where the value is used; an error
 * inside an aliased collection still points at its text, under the anchor. */
static void test_alias_errors(void)
{
    EXPECT_ERRORS("workers: &w 2\n" LISTENER_HEAD BACKEND_TAIL "log: *w\n", "an aliased scalar where a mapping goes",
                  "t.yaml:7:6: 'log' must be a mapping");
    EXPECT_ERRORS("listeners: &l\n  - address: 127.0.0.1:8443\n" BACKEND_TAIL "limits: *l\nlog: {level: *l}\n",
                  "an aliased list used twice, each use where it is", "t.yaml:6:9: 'limits' must be a mapping",
                  "t.yaml:7:14: 'level' must be one of error, warn, info, debug");
    struct lw_config *c = load_ok(LISTENER_HEAD "backends:\n  - {name: a, members: &m ['127.0.0.1:1']}\n"
                                                "  - {name: b, members: *m}\nroutes: [{path: /, backend: b}]\n",
                                  "an aliased list loads as its anchor");
    TAP_OK(c != NULL && c->num_backends == 2 && c->backends[1].num_members == 1 && c->backends[1].members[0].port == 1,
           "the alias's members are read");
    lw_config_unref(c);
}

int main(void)
{
    test_default();
    test_values();
    test_small_forms();
    test_syntax_errors();
    test_key_errors();
    test_type_errors();
    test_value_errors();
    test_address_errors();
    test_semantic_errors();
    test_file_errors();
    test_route_match();
    test_refcount();
    test_examples();
    test_push_and_experiments();
    test_arm_weight_total();
    test_alias_errors();
    return tap_done();
}
