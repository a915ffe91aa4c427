/* SPDX-License-Identifier: MIT */
/*
 * lowat's entry point: command line, configuration (a file, or the embedded default),
 * listening sockets, TLS contexts, worker threads, and signals. SIGTERM and SIGINT stop
 * gracefully (stop accepting, GOAWAY, drain, exit 0); a second one cuts the drain short.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "config/config.h"
#include "proxy/sock.h"
#include "proxy/admin.h"
#include "proxy/metrics.h"
#include "proxy/tls.h"
#include "proxy/worker.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: lowat [-c FILE] [-t] [--help] [--version]\n"
                 "\n"
                 "lowat is an HTTP/2 edge proxy: it terminates TLS, HTTP/2 and HTTP/1.1 and proxies\n"
                 "to keep-alive HTTP/1.1 backends.\n"
                 "\n"
                 "  -c, --config FILE  the YAML configuration (default: the embedded default, which\n"
                 "                     serves TLS on 127.0.0.1:8443 with a generated self-signed\n"
                 "                     certificate and proxies to 127.0.0.1:8080)\n"
                 "  -t, --test         check the configuration, its certificates and keys and its log\n"
                 "                     paths as a start would, print OK or each error, and exit\n"
                 "  -h, --help         show this help\n"
                 "  -v, --version      show the version\n"
                 "\n"
                 "Signals: SIGTERM or SIGINT stop gracefully (drain in-flight exchanges); a second one\n"
                 "stops at once. SIGHUP is logged and ignored (no reload yet).\n"
                 "See config/examples/ for annotated configuration files.\n");
}

static int load_config(const char *path, struct lw_config **out)
{
    struct lw_config_errors errs = {0};
    int rc;
    if (path != NULL) {
        rc = lw_config_load_file(path, out, &errs);
    } else {
        const char *text = lw_config_default_text();
        rc = lw_config_load_string(text, strlen(text), "<default>", out, &errs);
    }
    for (size_t i = 0; i < errs.count; i++) {
        fprintf(stderr, "%s\n", errs.msgs[i]);
    }
    lw_config_errors_dispose(&errs);
    return rc;
}

static int open_log(const char *path, int flags)
{
    int fd = open(path, flags | O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "lowat: cannot open %s: %s\n", path, strerror(errno));
    }
    return fd;
}

/*
 * Whether open_log would fail, found without opening or creating anything: opening is not
 * free of effects (closing a FIFO's only writer hands its reader an end of file). AT_EACCESS
 * checks with the effective IDs and capabilities, as open does. An existing file must be
 * writable; a missing one needs a directory we may write and search. A dangling symbolic
 * link would be created at its target, which is left to the start.
 */
static int check_log(const char *path)
{
    struct stat st;
    int err = 0;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            err = EISDIR;
        } else if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) != 0) {
            err = errno;
        }
    } else if (errno != ENOENT) {
        err = errno;
    } else if (lstat(path, &st) != 0) {
        const char *slash = strrchr(path, '/');
        char *dir = slash == NULL ? lw_strdup(".") : lw_strndup(path, slash == path ? 1 : (size_t)(slash - path));
        if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) {
            err = errno;
        }
        free(dir);
    }
    if (err != 0) {
        fprintf(stderr, "lowat: cannot open %s: %s\n", path, strerror(err));
        return LW_EIO;
    }
    return 0;
}

/* The same function and message for the start and for -t, so both refuse the same files. */
static int new_tls_ctx(const struct lw_config_listener *l, struct lw_tls_ctx **out)
{
    char err[512];
    int rc = lw_tls_ctx_new(l, out, err, sizeof(err));
    if (rc != 0) {
        lw_log_error("listener %s:%u: %s", l->host, l->port, err);
    }
    return rc;
}

/*
 * -t: what the loader cannot know but a start would refuse, checked without binding sockets
 * or starting workers: the log files can be opened, and every TLS listener's certificates
 * and keys load and match (the contexts are built as a start builds them, then freed).
 * Every problem is reported, not only the first. Messages go to stderr even when the config
 * names an error log, and at warn level at most: a check reports problems, not start-up
 * lines such as a generated certificate's fingerprint.
 */
static int check_start(const struct lw_config *cfg)
{
    int rc = 0;
    lw_log_set_level(cfg->log_level < LW_LOG_WARN ? cfg->log_level : LW_LOG_WARN);
    if (cfg->error_log != NULL && check_log(cfg->error_log) != 0) {
        rc = LW_EIO;
    }
    const char *access = cfg->access_log; /* NULL: stdout */
    if (access != NULL && strcmp(access, "off") != 0 && strcmp(access, "stderr") != 0 && check_log(access) != 0) {
        rc = LW_EIO;
    }
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        struct lw_tls_ctx *tls = NULL;
        if (cfg->listeners[i].tls && new_tls_ctx(&cfg->listeners[i], &tls) != 0) {
            rc = LW_EINVAL;
        }
        if (tls != NULL) {
            lw_tls_ctx_free(tls);
        }
    }
    return rc;
}

/* Bind every listener once in the main thread, so a port 0 becomes one concrete port that
 * every worker's SO_REUSEPORT socket then shares. */
static int bind_listeners(struct lw_proxy *p)
{
    const struct lw_config *cfg = p->config;
    p->num_listens = cfg->num_listeners;
    p->listens = lw_calloc(cfg->num_listeners, sizeof(*p->listens));
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        const struct lw_config_listener *l = &cfg->listeners[i];
        struct lw_listen_spec *spec = &p->listens[i];
        spec->cfg = l;
        spec->first_fd = -1;
        if (l->tls && new_tls_ctx(l, &spec->tls) != 0) {
            return LW_EINVAL;
        }
        struct sockaddr_storage ss;
        socklen_t len;
        if (!lw_sock_parse_literal(l->host, l->port, &ss, &len)) {
            lw_log_error("listener %s: not a literal address", l->host);
            return LW_EINVAL;
        }
        spec->first_fd = lw_sock_listen((struct sockaddr *)&ss, len, 1024);
        if (spec->first_fd < 0) {
            lw_log_error("cannot listen on %s:%u: %s", l->host, l->port, strerror(errno));
            return LW_EIO;
        }
        spec->port = lw_sock_local_port(spec->first_fd);
    }
    return 0;
}

/* The admin listener (off unless configured), bound here like the others so port 0 works. */
static int bind_admin(struct lw_proxy *p)
{
    const struct lw_config *cfg = p->config;
    if (cfg->admin_host == NULL) {
        return 0;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    if (!lw_sock_parse_literal(cfg->admin_host, cfg->admin_port, &ss, &len)) {
        lw_log_error("admin %s: not a literal address", cfg->admin_host);
        return LW_EINVAL;
    }
    p->admin_fd = lw_sock_listen((struct sockaddr *)&ss, len, 64);
    if (p->admin_fd < 0) {
        lw_log_error("cannot listen on %s:%u for admin: %s", cfg->admin_host, cfg->admin_port, strerror(errno));
        return LW_EIO;
    }
    bool v6 = strchr(cfg->admin_host, ':') != NULL;
    lw_log_always("admin listening on %s%s%s:%u (/metrics, /healthz)", v6 ? "[" : "", cfg->admin_host, v6 ? "]" : "",
                  lw_sock_local_port(p->admin_fd));
    return 0;
}

static void free_listeners(struct lw_proxy *p)
{
    for (size_t i = 0; i < p->num_listens; i++) {
        if (p->listens[i].first_fd >= 0) {
            close(p->listens[i].first_fd);
        }
        if (p->listens[i].tls != NULL) {
            lw_tls_ctx_free(p->listens[i].tls);
        }
    }
    free(p->listens);
}

/* The workers drain. A second SIGTERM or SIGINT meanwhile cuts the drain short, as a second
 * Ctrl-C does elsewhere: otherwise only SIGKILL would, which logs nothing. A worker joined
 * here is marked so (thread 0) that lw_worker_join_and_dispose does not join it again. */
static void wait_for_drain(struct lw_worker *workers, size_t n, const sigset_t *sigs)
{
    bool cut = false;
    for (;;) {
        size_t running = 0;
        for (size_t i = 0; i < n; i++) {
            if (workers[i].thread && pthread_tryjoin_np(workers[i].thread, NULL) == 0) {
                workers[i].thread = 0;
            }
            running += workers[i].thread != 0;
        }
        if (running == 0) {
            return;
        }
        struct timespec tick = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(sigs, NULL, &tick);
        if ((sig == SIGTERM || sig == SIGINT) && !cut) {
            lw_log_always("%s again: stopping now", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            for (size_t i = 0; i < n; i++) {
                if (workers[i].thread) {
                    lw_worker_stop(&workers[i]);
                }
            }
            cut = true;
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool test_only = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:thv", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("lowat %s\n", LW_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lowat: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct lw_config *cfg = NULL;
    if (load_config(path, &cfg) != 0) {
        return 1;
    }
    if (test_only) {
        int rc = check_start(cfg);
        if (rc == 0) {
            printf("OK\n");
        }
        lw_config_unref(cfg);
        return rc == 0 ? 0 : 1;
    }

    int ret = 1;
    struct lw_proxy proxy = {.config = cfg, .access_log_fd = -1, .admin_fd = -1};
    const struct lw_metrics **all_metrics = NULL;
    struct lw_worker *workers = NULL;
    size_t num_workers = 0;
    lw_log_set_level(cfg->log_level);
    if (cfg->error_log != NULL) {
        int fd = open_log(cfg->error_log, 0);
        if (fd < 0) {
            goto Exit;
        }
        lw_log_set_fd(fd);
    }
    if (cfg->access_log == NULL) {
        proxy.access_log_fd = 1;
    } else if (strcmp(cfg->access_log, "off") == 0) {
        proxy.access_log_fd = -1;
    } else if (strcmp(cfg->access_log, "stderr") == 0) {
        proxy.access_log_fd = 2;
    } else if ((proxy.access_log_fd = open_log(cfg->access_log, 0)) < 0) {
        goto Exit;
    }

    signal(SIGPIPE, SIG_IGN);
    lw_metrics_set_start_time((uint64_t)time(NULL));
    /* Workers inherit a mask with the stop signals blocked; only this thread takes them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (bind_listeners(&proxy) != 0 || bind_admin(&proxy) != 0) {
        goto Exit;
    }
    num_workers = cfg->workers ? cfg->workers : (size_t)sysconf(_SC_NPROCESSORS_ONLN);
    if (num_workers < 1) {
        num_workers = 1;
    }
    workers = lw_calloc(num_workers, sizeof(*workers));
    for (size_t i = 0; i < num_workers; i++) {
        if (lw_worker_init(&workers[i], (int)i, &proxy) != 0) {
            num_workers = i + 1;
            goto Exit;
        }
    }
    all_metrics = lw_calloc(num_workers, sizeof(*all_metrics));
    for (size_t i = 0; i < num_workers; i++) {
        all_metrics[i] = &workers[i].metrics;
    }
    if (proxy.admin_fd >= 0) {
        workers[0].admin = lw_admin_new(&workers[0], proxy.admin_fd, all_metrics, num_workers);
        proxy.admin_fd = -1;
    }
    for (size_t i = 0; i < proxy.num_listens; i++) {
        const struct lw_listen_spec *s = &proxy.listens[i];
        bool v6 = strchr(s->cfg->host, ':') != NULL;
        lw_log_always("listening on %s%s%s:%u (%s)", v6 ? "[" : "", s->cfg->host, v6 ? "]" : "", s->port,
                    s->tls ? "tls" : "cleartext");
    }
    for (size_t i = 0; i < num_workers; i++) {
        if (lw_worker_start(&workers[i]) != 0) {
            num_workers = i;
            goto Exit;
        }
    }
    lw_log_always("lowat %s started: %zu worker(s), config %s", LW_VERSION, num_workers, cfg->source);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            lw_log_warn("SIGHUP: configuration reload is not supported yet; restart to apply changes");
            continue;
        }
        lw_log_always("%s: stopping gracefully (drain timeout %ums)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                    cfg->drain_timeout_ms);
        break;
    }
    ret = 0;
Exit:
    for (size_t i = 0; i < num_workers; i++) {
        if (workers[i].thread) {
            lw_worker_stop(&workers[i]);
        }
    }
    if (ret == 0) {
        wait_for_drain(workers, num_workers, &sigs);
    }
    for (size_t i = 0; i < num_workers; i++) {
        lw_worker_join_and_dispose(&workers[i]);
    }
    free(workers);
    free(all_metrics);
    free_listeners(&proxy);
    if (proxy.admin_fd >= 0) {
        close(proxy.admin_fd);
    }
    if (proxy.access_log_fd > 2) {
        close(proxy.access_log_fd);
    }
    if (ret == 0) {
        lw_log_always("stopped");
    }
    lw_config_unref(cfg);
    return ret;
}
