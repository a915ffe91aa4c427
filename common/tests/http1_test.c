/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/http1: well-formed requests and responses, every rejection the
 * parser promises (each with the reason it should give, because the reason tells which check
 * fired), the head limits, and the chunked decoder fed in every possible split.
 */
#include "common/http1.h"

#include <stdlib.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/tests/tap.h"

static struct lw_http1_header hdrs[32];

static ssize_t parse_req_n(const char *s, size_t len, struct lw_http1_request *req, const char **why)
{
    return lw_http1_parse_request(s, len, req, hdrs, LW_ARRAY_LEN(hdrs), 8192, why);
}

static ssize_t parse_req(const char *s, struct lw_http1_request *req, const char **why)
{
    return parse_req_n(s, strlen(s), req, why);
}

static ssize_t parse_res(const char *s, bool is_head, struct lw_http1_response *res, const char **why)
{
    return lw_http1_parse_response(s, strlen(s), is_head, res, hdrs, LW_ARRAY_LEN(hdrs), 8192, why);
}

/* The rejection must carry the expected code and reason: another reason means another
 * check fired, and the one under test may be broken. */
static void check_error(ssize_t rc, const char *why, ssize_t code, const char *reason, const char *what)
{
    TAP_OK(rc == code && why != NULL && strcmp(why, reason) == 0, "%s: %s", what, reason);
    if (rc != code || why == NULL || strcmp(why, reason) != 0) {
        printf("#   got %zd (%s), want %zd (%s)\n", rc, why != NULL ? why : "no reason", code, reason);
    }
}

static void req_error_n(const char *s, size_t len, ssize_t code, const char *reason, const char *what)
{
    struct lw_http1_request req;
    const char *why = NULL;
    ssize_t rc = parse_req_n(s, len, &req, &why);
    check_error(rc, why, code, reason, what);
}

static void req_error(const char *s, ssize_t code, const char *reason, const char *what)
{
    req_error_n(s, strlen(s), code, reason, what);
}

static void res_error(const char *s, ssize_t code, const char *reason, const char *what)
{
    struct lw_http1_response res;
    const char *why = NULL;
    ssize_t rc = parse_res(s, false, &res, &why);
    check_error(rc, why, code, reason, what);
}

static void test_simple_requests(void)
{
    struct lw_http1_request req;
    const char *why = NULL;
    const char *get = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Pad:  a b \t\r\n\r\n";
    ssize_t rc = parse_req(get, &req, &why);

    TAP_EQ_INT(rc, strlen(get), "GET: the head length is returned");
    TAP_EQ_MEM(req.method, req.method_len, "GET", "GET: method");
    TAP_EQ_MEM(req.target, req.target_len, "/index.html?q=1", "GET: target");
    TAP_OK(req.minor_version == 1 && req.num_headers == 2 && req.headers == hdrs, "GET: version and header count");
    TAP_EQ_MEM(req.host, req.host_len, "example.com", "GET: host");
    TAP_EQ_MEM(hdrs[1].value, hdrs[1].value_len, "a b", "GET: OWS trimmed around a value, kept inside");
    TAP_OK(req.body == LW_HTTP1_BODY_NONE && req.keep_alive && !req.expect_continue && !req.upgrade,
           "GET: no body, keep-alive by default in 1.1");

    const char *post = "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    rc = parse_req(post, &req, &why);
    TAP_OK(rc == (ssize_t)strlen(post) - 5 && req.body == LW_HTTP1_BODY_LENGTH && req.content_length == 5,
           "POST: Content-Length body, the return value points at it");

    rc = parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && req.body == LW_HTTP1_BODY_NONE && req.content_length == 0, "Content-Length: 0 gives NONE");

    rc = parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && req.body == LW_HTTP1_BODY_CHUNKED, "chunked request (coding name is case-insensitive)");

    rc = parse_req("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && req.body == LW_HTTP1_BODY_LENGTH && req.content_length == 7,
           "identical Content-Length values and lines read as one");

    rc = parse_req("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && hdrs[1].value_len == 5, "obs-text allowed in a value");

    rc = parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && req.target_len == 1 && req.target[0] == '*', "asterisk-form target");

    rc = parse_req("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &req, &why);
    TAP_EQ_MEM(req.target, req.target_len, "example.com:443", "authority-form target");

    rc = parse_req("GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", &req, &why);
    TAP_OK(rc > 0, "absolute-form target and an IP-literal Host");

    rc = parse_req("GET / HTTP/1.1\r\nHost:\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && req.host != NULL && req.host_len == 0, "empty Host is allowed (RFC 9110 7.2)");
}

static void test_connection_semantics(void)
{
    struct lw_http1_request req;
    const char *why = NULL;
    ssize_t rc;

    rc = parse_req("GET / HTTP/1.0\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && req.minor_version == 0 && req.host == NULL && !req.keep_alive,
           "HTTP/1.0 without Host, no keep-alive by default");
    rc = parse_req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && req.keep_alive, "HTTP/1.0 with Connection: keep-alive");
    rc = parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: bar , Close\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && !req.keep_alive, "close found in the second Connection line");
    rc = parse_req("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && req.expect_continue, "Expect: 100-continue, case-insensitive");
    rc = parse_req("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", &req,
                   &why);
    TAP_OK(rc > 0 && req.upgrade, "Upgrade listed in Connection");
    rc = parse_req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && !req.upgrade, "Upgrade without Connection: upgrade is not an upgrade");
    rc = parse_req("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: x\r\nExpect: 100-continue\r\n\r\n", &req, &why);
    TAP_OK(rc > 0 && !req.upgrade && !req.expect_continue, "HTTP/1.0 can neither upgrade nor expect 100-continue");
}

static void test_pipelining_and_prefixes(void)
{
    struct lw_http1_request req;
    const char *why = NULL;
    const char *two = "\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n";
    ssize_t rc = parse_req(two, &req, &why);
    ssize_t first = (ssize_t)strlen("\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n");

    TAP_OK(rc == first && req.target[1] == 'a', "pipelined: a leading CRLF is skipped and counted, first request");
    rc = parse_req(two + first, &req, &why);
    TAP_OK(rc == (ssize_t)strlen(two) - first && req.target[1] == 'b', "pipelined: the second starts at the return");

    const char *full = "PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t len = strlen(full);
    bool ok = true;
    for (size_t i = 0; i < len; i++) {
        /* An exact-size copy, so that reading past the prefix is caught by ASan. */
        char *copy = malloc(i > 0 ? i : 1);
        memcpy(copy, full, i);
        if (parse_req_n(copy, i, &req, &why) != LW_EINCOMPLETE) {
            ok = false;
            printf("#   prefix of %zu bytes was not incomplete\n", i);
        }
        free(copy);
    }
    TAP_OK(ok, "every proper prefix of a request is LW_EINCOMPLETE");
    TAP_EQ_INT(parse_req_n(full, len, &req, &why), len, "the whole request parses");

    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    struct lw_http1_response res;
    ok = true;
    for (size_t i = 0; i < strlen(resp) - 2; i++) {
        ok &= lw_http1_parse_response(resp, i, false, &res, hdrs, 8, 8192, &why) == LW_EINCOMPLETE;
    }
    TAP_OK(ok, "every proper prefix of a response head is LW_EINCOMPLETE");

    rc = parse_req("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &req, &why);
    TAP_OK(rc > 0, "four leading empty lines are skipped");
    req_error("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", LW_EPROTO, "too many empty lines before request",
              "five leading empty lines");
}

static void test_request_line_rejections(void)
{
    req_error("GET / HTTP/1.1\nHost: a\r\n\r\n", LW_EPROTO, "bare LF line end", "bare LF after the request line");
    req_error("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid method", "non-token method");
    req_error(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid method", "leading space");
    req_error("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid method", "tab as separator");
    req_error("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid request-target", "double space");
    req_error("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid request-target", "CTL in target");
    req_error("GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid request-target", "bare CR in target");
    req_error("GET /\r\n\r\n", LW_EPROTO, "invalid HTTP version", "HTTP/0.9 request line");
    req_error("GET / HTTP/1.2\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid HTTP version", "HTTP/1.2");
    req_error("GET / HTTP/2.0\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid HTTP version", "HTTP/2.0");
    req_error("GET / http/1.1\r\nHost: a\r\n\r\n", LW_EPROTO, "invalid HTTP version", "lowercase version");
    req_error("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", LW_EPROTO, "invalid HTTP version", "trailing space");
}

static void test_field_rejections(void)
{
    req_error("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", LW_EPROTO, "bare LF line end", "bare LF after a field");
    req_error("GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n", LW_EPROTO, "bare CR in header", "bare CR in a value");
    req_error("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", LW_EPROTO, "obs-fold not allowed", "obs-fold");
    req_error("GET / HTTP/1.1\r\n Host: a\r\n\r\n", LW_EPROTO, "whitespace before first header",
              "whitespace after the start line");
    req_error("GET / HTTP/1.1\r\nHost : a\r\n\r\n", LW_EPROTO, "whitespace before colon", "space before the colon");
    req_error("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", LW_EPROTO, "whitespace before colon", "tab before the colon");
    req_error("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", LW_EPROTO, "invalid header name", "non-token field name");
    req_error("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", LW_EPROTO, "empty header name", "empty field name");
    req_error("GET / HTTP/1.1\r\nHost: a\r\nFoo\r\n\r\n", LW_EPROTO, "missing colon in header", "no colon");
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    req_error_n(nul, sizeof(nul) - 1, LW_EPROTO, "NUL in header", "NUL in a value");
    req_error("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", LW_EPROTO, "invalid character in header value",
              "CTL in a value");
    req_error("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", LW_EPROTO, "invalid character in header value",
              "DEL in a value");
    req_error("GET / HTTP/1.1\r\n\r\n", LW_EPROTO, "missing Host", "HTTP/1.1 without Host");
    req_error("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", LW_EPROTO, "multiple Host headers", "two Hosts");
    req_error("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", LW_EPROTO, "multiple Host headers",
              "two Hosts in HTTP/1.0 too");
    req_error("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", LW_EPROTO, "invalid Host", "space inside Host");
    req_error("GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n", LW_EPROTO, "invalid Host", "path characters in Host");
}

static void test_framing_rejections(void)
{
    const char *both = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    req_error(both, LW_EPROTO, "both Content-Length and Transfer-Encoding", "CL and TE");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", LW_EPROTO, "invalid Content-Length",
              "negative CL");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", LW_EPROTO, "invalid Content-Length",
              "signed CL");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", LW_EPROTO, "invalid Content-Length",
              "hex CL");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", LW_EPROTO, "invalid Content-Length",
              "space inside CL");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", LW_EPROTO, "invalid Content-Length",
              "empty CL");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", LW_EPROTO, "invalid Content-Length",
              "CL list with an empty element");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", LW_EPROTO,
              "invalid Content-Length", "CL overflowing 64 bits");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387905\r\n\r\n", LW_EPROTO,
              "invalid Content-Length", "CL of 2^62 + 1");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", LW_EPROTO, "conflicting Content-Length",
              "differing CL list");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n", LW_EPROTO,
              "conflicting Content-Length", "differing CL lines");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", LW_EPROTO,
              "unsupported Transfer-Encoding", "TE gzip");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", LW_EPROTO,
              "unsupported Transfer-Encoding", "TE gzip, chunked");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", LW_EPROTO,
              "unsupported Transfer-Encoding", "chunked not last");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
              LW_EPROTO, "chunked applied more than once", "chunked twice over two lines");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", LW_EPROTO,
              "invalid Transfer-Encoding", "chunked with a parameter");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", LW_EPROTO,
              "invalid Transfer-Encoding", "quoted coding");
    req_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", LW_EPROTO, "empty Transfer-Encoding",
              "TE without a coding");
    req_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", LW_EPROTO, "Transfer-Encoding in HTTP/1.0",
              "TE in an HTTP/1.0 request");
}

static void test_limits(void)
{
    struct lw_http1_request req;
    const char *why = NULL;
    const char *r = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    size_t len = strlen(r);
    ssize_t rc;

    rc = lw_http1_parse_request(r, len, &req, hdrs, 2, 8192, &why);
    check_error(rc, why, LW_ELIMIT, "too many headers", "three fields with room for two");
    rc = lw_http1_parse_request(r, len, &req, hdrs, 3, 8192, &why);
    TAP_EQ_INT(rc, len, "three fields with room for three");
    rc = lw_http1_parse_request(r, len, &req, hdrs, 8, len, &why);
    TAP_EQ_INT(rc, len, "a head exactly max_head_bytes long is accepted");
    rc = lw_http1_parse_request(r, len, &req, hdrs, 8, len - 1, &why);
    check_error(rc, why, LW_ELIMIT, "head too long", "a head one byte over max_head_bytes");
    rc = lw_http1_parse_request(r, 20, &req, hdrs, 8, 20, &why);
    check_error(rc, why, LW_ELIMIT, "head too long", "an incomplete head that has reached the cap");
    rc = lw_http1_parse_request(r, 19, &req, hdrs, 8, 20, &why);
    TAP_EQ_INT(rc, LW_EINCOMPLETE, "an incomplete head under the cap");
}

static void test_responses(void)
{
    struct lw_http1_response res;
    const char *why = NULL;
    ssize_t rc;

    rc = parse_res("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, &res, &why);
    TAP_OK(rc == 38 && res.status == 200 && res.body == LW_HTTP1_BODY_LENGTH && res.content_length == 5 &&
               res.keep_alive,
           "200 with Content-Length");
    TAP_EQ_MEM(res.reason, res.reason_len, "OK", "reason phrase");
    rc = parse_res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_CHUNKED && res.keep_alive, "chunked response");
    /* Only chunked is decoded: the bytes under any other coding would go on still coded. */
    res_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", LW_EPROTO, "unsupported Transfer-Encoding",
              "gzip then chunked");
    res_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", LW_EPROTO, "unsupported Transfer-Encoding",
              "gzip, close-delimited");
    res_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", LW_EPROTO,
              "unsupported Transfer-Encoding", "gzip and chunked on two lines");
    rc = parse_res("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", true, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_NONE, "a response to HEAD has no body to decode, whatever its coding");
    rc = parse_res("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_CLOSE && !res.keep_alive, "neither CL nor TE: close-delimited");
    rc = parse_res("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_NONE && res.keep_alive, "Content-Length: 0 gives NONE");
    rc = parse_res("HTTP/1.1 100 Continue\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.status == 100 && res.body == LW_HTTP1_BODY_NONE, "100 has no body");
    rc = parse_res("HTTP/1.1 204 No Content\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_NONE && res.keep_alive, "204 has no body");
    rc = parse_res("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_NONE, "304 has no body whatever its Content-Length");
    rc = parse_res("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_NONE && res.keep_alive, "a response to HEAD has no body");
    rc = parse_res("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n", true, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_NONE && res.has_content_length && res.content_length == 2,
           "a response to HEAD states its Content-Length list as one number");
    rc = parse_res("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nContent-Length: 7,7\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_NONE && res.has_content_length && res.content_length == 7,
           "a 304 states its repeated Content-Length as one number");
    rc = parse_res("HTTP/1.1 304 Not Modified\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && !res.has_content_length, "a 304 without Content-Length states none");
    const char *hints = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style\r\n"
                        "Link: </b.js>; rel=preload; as=script\r\n\r\n";
    char both[256];
    snprintf(both, sizeof(both), "%sHTTP/1.1 200 OK\r\n", hints);
    rc = parse_res(both, false, &res, &why);
    TAP_OK(rc == (ssize_t)strlen(hints) && res.status == 103 && res.num_headers == 2 && res.body == LW_HTTP1_BODY_NONE,
           "103 with two Link headers ends at its own empty line");
    TAP_EQ_MEM(res.headers[1].value, res.headers[1].value_len, "</b.js>; rel=preload; as=script", "103 Link value");
    rc = parse_res("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.reason_len == 0, "no reason phrase and no space");
    rc = parse_res("HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.status == 404 && res.reason_len == 0, "empty reason phrase after the space");
}

static void test_response_connection(void)
{
    struct lw_http1_response res;
    const char *why = NULL;
    ssize_t rc;

    rc = parse_res("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.minor_version == 0 && !res.keep_alive, "HTTP/1.0 response closes by default");
    rc = parse_res("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.keep_alive, "HTTP/1.0 response with Connection: keep-alive");
    rc = parse_res("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && res.body == LW_HTTP1_BODY_CLOSE && !res.keep_alive, "a close-delimited body wins over keep-alive");
    rc = parse_res("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false, &res, &why);
    TAP_OK(rc > 0 && !res.keep_alive, "HTTP/1.1 response with Connection: close");

    res_error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", LW_EPROTO,
              "both Content-Length and Transfer-Encoding", "response with CL and TE");
    res_error("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", LW_EPROTO, "Transfer-Encoding in HTTP/1.0",
              "TE in an HTTP/1.0 response");
    res_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", LW_EPROTO,
              "chunked applied more than once", "response chunked twice");
    res_error("HTTP/1.1 99 OK\r\n\r\n", LW_EPROTO, "invalid status code", "two-digit status");
    res_error("HTTP/1.1 099 OK\r\n\r\n", LW_EPROTO, "invalid status code", "status below 100");
    res_error("HTTP/1.1 2000 OK\r\n\r\n", LW_EPROTO, "invalid status code", "four-digit status");
    res_error("HTTP/1.1 2x0 OK\r\n\r\n", LW_EPROTO, "invalid status code", "non-digit status");
    res_error("HTTP/1.2 200 OK\r\n\r\n", LW_EPROTO, "invalid HTTP version", "HTTP/1.2 response");
    res_error("HTTP/2 200 OK\r\n\r\n", LW_EPROTO, "invalid HTTP version", "HTTP/2 status line");
    res_error("HTTP/1.1 200 O\rK\r\n\r\n", LW_EPROTO, "bare CR in status line", "bare CR in the reason");
    res_error("HTTP/1.1 200 OK\r\nX: y\n\r\n", LW_EPROTO, "bare LF line end", "bare LF in a response");
}

/*
 * Feed in[0..len) to a fresh decoder as a socket would deliver it: the bytes up to splits[0],
 * then up to splits[1], ..., then the rest, keeping what the decoder did not consume.
 * Decoded data goes to out. Returns the bytes consumed or the first error.
 */
static ssize_t chunked_feed(const char *in, size_t len, const size_t *splits, size_t nsplits, char *out,
                            size_t *out_len, bool *done, const char **why)
{
    struct lw_http1_chunked c;
    size_t pos = 0;

    lw_http1_chunked_init(&c);
    *out_len = 0;
    for (size_t k = 0; k <= nsplits && !lw_http1_chunked_is_done(&c); k++) {
        size_t avail = k < nsplits ? splits[k] : len;
        while (pos < avail && !lw_http1_chunked_is_done(&c)) {
            const char *d;
            size_t dl;
            ssize_t n = lw_http1_chunked_decode(&c, in + pos, avail - pos, &d, &dl, why);
            if (n < 0) {
                *done = false;
                return n;
            }
            if (n == 0) {
                break;
            }
            if (dl > 0) {
                memcpy(out + *out_len, d, dl);
                *out_len += dl;
            }
            pos += (size_t)n;
        }
    }
    *done = lw_http1_chunked_is_done(&c);
    return (ssize_t)pos;
}

static ssize_t chunked_once(const char *in, size_t len, char *out, size_t *out_len, bool *done, const char **why)
{
    return chunked_feed(in, len, NULL, 0, out, out_len, done, why);
}

static void chunked_error(const char *in, size_t len, ssize_t code, const char *reason, const char *what)
{
    char out[64];
    size_t out_len;
    bool done;
    const char *why = NULL;
    ssize_t rc = chunked_once(in, len, out, &out_len, &done, &why);
    check_error(rc, why, code, reason, what);
}

static void test_chunked(void)
{
    char out[256];
    size_t out_len;
    bool done;
    const char *why = NULL;
    const char *in = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    ssize_t rc = chunked_once(in, strlen(in), out, &out_len, &done, &why);

    TAP_OK(rc == (ssize_t)strlen(in) && done, "chunked: consumed through the final CRLF and done");
    TAP_EQ_MEM(out, out_len, "hello world", "chunked: data");

    in = "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    rc = chunked_once(in, strlen(in), out, &out_len, &done, &why);
    TAP_OK(rc == (ssize_t)(strlen(in) - 16) && done && out_len == 20,
           "hex digits in both cases; the next message is left alone");

    in = "5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n";
    rc = chunked_once(in, strlen(in), out, &out_len, &done, &why);
    TAP_OK(rc == (ssize_t)strlen(in) && done && out_len == 5, "chunk extensions are skipped");

    in = "3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nY:\tz \r\n\r\n";
    rc = chunked_once(in, strlen(in), out, &out_len, &done, &why);
    TAP_OK(rc == (ssize_t)strlen(in) && done && out_len == 3, "trailers are discarded");

    in = "5\r\nhel";
    rc = chunked_once(in, strlen(in), out, &out_len, &done, &why);
    TAP_OK(rc == 6 && !done && out_len == 3, "a partial chunk gives its data so far");

    struct lw_http1_chunked c;
    const char *d;
    size_t dl;
    lw_http1_chunked_init(&c);
    in = "3\r\nabc\r\n2\r\nde\r\n";
    rc = lw_http1_chunked_decode(&c, in, strlen(in), &d, &dl, &why);
    TAP_OK(rc == 6 && dl == 3 && d == in + 3, "one call stops after one run of data, which ends at the return");

    in = "ffffffffffffffff\r\nxy";
    rc = chunked_once(in, strlen(in), out, &out_len, &done, &why);
    TAP_OK(rc == (ssize_t)strlen(in) && out_len == 2 && !done, "a 16-digit chunk size is accepted");
}

static void test_chunked_splits(void)
{
    const char *in = "4;a=b\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\n";
    size_t len = strlen(in);
    char want[64], got[64];
    size_t want_len, got_len;
    bool done;
    const char *why = NULL;
    bool ok = true;

    chunked_once(in, len, want, &want_len, &done, &why);
    TAP_EQ_MEM(want, want_len, "Wikipedia in\r\n\r\nchunks.", "chunked: data may hold CRLF");
    for (size_t i = 0; i <= len; i++) {
        ssize_t rc = chunked_feed(in, len, &i, 1, got, &got_len, &done, &why);
        if (rc != (ssize_t)len || !done || got_len != want_len || memcmp(got, want, want_len) != 0) {
            ok = false;
            printf("#   split at %zu differs\n", i);
        }
    }
    TAP_OK(ok, "a split at every byte position decodes the same");

    size_t splits[128];
    for (size_t i = 0; i < len; i++) {
        splits[i] = i + 1;
    }
    ssize_t rc = chunked_feed(in, len, splits, len, got, &got_len, &done, &why);
    TAP_OK(rc == (ssize_t)len && done && got_len == want_len && memcmp(got, want, want_len) == 0,
           "byte at a time decodes the same");
}

static void test_chunked_rejections(void)
{
    static char big[LW_HTTP1_TRAILER_MAX + 64];
    size_t n;

    chunked_error("zz\r\n", 4, LW_EPROTO, "invalid chunk size", "non-hex size");
    chunked_error("\r\n", 2, LW_EPROTO, "invalid chunk size", "empty size");
    chunked_error("5 \r\nhello\r\n", 11, LW_EPROTO, "invalid chunk size", "space after the size");
    chunked_error("-5\r\n", 4, LW_EPROTO, "invalid chunk size", "signed size");
    chunked_error("5\nhello\r\n", 9, LW_EPROTO, "invalid chunk size", "bare LF after the size");
    chunked_error("5\r\rhello\r\n", 10, LW_EPROTO, "bare CR in chunk size line", "bare CR after the size");
    chunked_error("5\r\nhelloX\r\n", 12, LW_EPROTO, "missing CRLF after chunk data", "data longer than its size");
    chunked_error("5\r\nhello\n0\r\n\r\n", 15, LW_EPROTO, "missing CRLF after chunk data", "bare LF after data");
    chunked_error("5;a\x01\r\nhello\r\n", 14, LW_EPROTO, "invalid character in chunk extension", "CTL in extension");
    chunked_error("10000000000000000\r\n", 19, LW_EPROTO, "chunk size too large", "17-digit size");
    chunked_error("00000000000000001\r\n", 19, LW_EPROTO, "chunk size too large", "17 digits with leading zeros");
    chunked_error("0\r\nX: a\r\n b\r\n\r\n", 15, LW_EPROTO, "invalid trailer field", "obs-fold in a trailer");
    chunked_error("0\r\nX a\r\n\r\n", 10, LW_EPROTO, "invalid trailer field", "trailer without a colon");
    chunked_error("0\r\nX: a\n\r\n", 10, LW_EPROTO, "invalid character in trailer", "bare LF in a trailer");
    chunked_error("0\r\n\r\r", 5, LW_EPROTO, "bare CR in trailer", "bare CR at the end");

    n = (size_t)snprintf(big, sizeof(big), "1;");
    memset(big + n, 'x', LW_HTTP1_CHUNK_LINE_MAX);
    n += LW_HTTP1_CHUNK_LINE_MAX;
    memcpy(big + n, "\r\na\r\n", 5);
    chunked_error(big, n + 5, LW_ELIMIT, "chunk size line too long", "oversized size line");

    n = (size_t)snprintf(big, sizeof(big), "0\r\nX: ");
    memset(big + n, 'y', LW_HTTP1_TRAILER_MAX);
    n += LW_HTTP1_TRAILER_MAX;
    memcpy(big + n, "\r\n\r\n", 4);
    chunked_error(big, n + 4, LW_ELIMIT, "trailer section too long", "huge trailer");
}

static void test_helpers(void)
{
    TAP_OK(lw_http1_name_eq("Content-Length", 14, "content-length") &&
               !lw_http1_name_eq("Content-Lengt", 13, "content-length"),
           "name_eq compares case-insensitively and by length");
    TAP_OK(lw_http1_name_eq("CONTENT-LENGTH", 14, "content-length") &&
               lw_http1_name_eq("Connection", 10, "connection") && lw_http1_name_eq("KeeP-AlivE", 10, "keep-alive") &&
               lw_http1_name_eq("Transfer-EncodinG", 17, "transfer-encoding"),
           "name_eq: long names in any case, whatever their length past 8");
    TAP_OK(!lw_http1_name_eq("content_length", 14, "content-length") &&
               !lw_http1_name_eq("Content-Lengti", 14, "content-length") &&
               !lw_http1_name_eq("Xonnection", 10, "connection") &&
               !lw_http1_name_eq("connectio\xce", 10, "connection") &&
               !lw_http1_name_eq("c{nnection", 10, "c[nnection") && !lw_http1_name_eq("c@nnection", 10, "c`nnection"),
           "name_eq: a difference in the first, middle or last byte, and no folding outside A-Z");
    TAP_OK(lw_http1_has_token("foo, Close", 10, "close") && lw_http1_has_token(",, keep-alive ,", 15, "keep-alive"),
           "has_token finds tokens among OWS and empty elements");
    TAP_OK(!lw_http1_has_token("closed", 6, "close") && !lw_http1_has_token("", 0, "close"),
           "has_token matches whole elements only");
    TAP_OK(lw_http1_is_hop_by_hop("Connection", 10) && lw_http1_is_hop_by_hop("KEEP-ALIVE", 10) &&
               lw_http1_is_hop_by_hop("proxy-connection", 16) && lw_http1_is_hop_by_hop("TE", 2) &&
               lw_http1_is_hop_by_hop("Transfer-Encoding", 17) && lw_http1_is_hop_by_hop("Upgrade", 7) &&
               lw_http1_is_hop_by_hop("HTTP2-Settings", 14) && lw_http1_is_hop_by_hop("Trailer", 7),
           "hop-by-hop headers");
    TAP_OK(!lw_http1_is_hop_by_hop("Host", 4) && !lw_http1_is_hop_by_hop("Content-Length", 14) &&
               !lw_http1_is_hop_by_hop("tee", 3),
           "end-to-end headers");
    TAP_OK(lw_http1_is_tchar('a') && lw_http1_is_tchar('~') && lw_http1_is_tchar('!') && !lw_http1_is_tchar(':') &&
               !lw_http1_is_tchar(' ') && !lw_http1_is_tchar('"') && !lw_http1_is_tchar(0x80),
           "tchar");
    TAP_OK(lw_http1_is_host("example.com:8443", 16) && lw_http1_is_host("[::1]:443", 9) &&
               lw_http1_is_host("a-b_c.~!$&'()*+,;=", 18),
           "is_host: reg-name, IP-literal and port characters");
    TAP_OK(!lw_http1_is_host("user@host", 9) && !lw_http1_is_host("h?q", 3) &&
               !lw_http1_is_host("h#.example.com", 14) && !lw_http1_is_host("h/p", 3) && !lw_http1_is_host("a<b>", 4) &&
               !lw_http1_is_host("a\"b", 3) && !lw_http1_is_host("{|}", 3) && !lw_http1_is_host("\xff", 1) &&
               !lw_http1_is_host("a b", 3),
           "is_host: no userinfo, path, query or fragment delimiter, nor bytes Host refuses");
}

/* Every byte of a long value is checked, wherever it falls among the 8-byte words the value
 * scan reads at once: each kind of byte at each position of a 40-byte value. */
static void test_value_bytes_at_every_position(void)
{
    static const struct {
        unsigned char c;
        bool ok;
    } kinds[] = {{'\t', true},  {0x80, true},  {0xff, true},  {' ', true},   {'~', true},  {0x01, false},
                 {0x1f, false}, {0x7f, false}, {'\r', false}, {'\n', false}, {0x00, false}};
    bool all = true;
    for (size_t k = 0; k < LW_ARRAY_LEN(kinds); k++) {
        for (size_t pos = 1; pos < 39; pos++) {
            char buf[128];
            char value[40];
            memset(value, 'v', sizeof(value));
            value[pos] = (char)kinds[k].c;
            int n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nX-Value: ");
            memcpy(buf + n, value, sizeof(value));
            n += (int)sizeof(value);
            static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";
            memcpy(buf + n, tail, sizeof(tail) - 1);
            n += (int)sizeof(tail) - 1;
            struct lw_http1_response res;
            const char *why = NULL;
            ssize_t rc = lw_http1_parse_response(buf, (size_t)n, false, &res, hdrs, LW_ARRAY_LEN(hdrs), 8192, &why);
            bool ok = kinds[k].ok ? rc == n && res.num_headers == 2 && hdrs[0].value_len == sizeof(value) &&
                                        memcmp(hdrs[0].value, value, sizeof(value)) == 0
                                  : rc < 0;
            if (!ok) {
                printf("# byte 0x%02x at %zu: rc %zd (%s)\n", kinds[k].c, pos, rc, why ? why : "-");
                all = false;
            }
        }
    }
    TAP_OK(all, "value bytes are judged alike at every position of a long value");
}

int main(void)
{
    test_simple_requests();
    test_connection_semantics();
    test_pipelining_and_prefixes();
    test_request_line_rejections();
    test_field_rejections();
    test_framing_rejections();
    test_limits();
    test_responses();
    test_response_connection();
    test_chunked();
    test_chunked_splits();
    test_chunked_rejections();
    test_helpers();
    test_value_bytes_at_every_position();
    return tap_done();
}
