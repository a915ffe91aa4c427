/* SPDX-License-Identifier: MIT */
/*
 * lowat-linkem: a link emulator between two network namespaces, so that lowat's "write for
 * responsiveness" can be measured across a real round trip on one machine (this kernel has no
 * netem). It opens a TUN device "tun0" in each namespace and forwards IP packets between them
 * from one event loop: each direction is a drop-tail queue of at most --queue-pkts packets in
 * front of a --rate-mbit serializer, followed by --delay-ms of propagation. A packet leaves the
 * queue at max(arrival, previous departure) + len * 8 / rate and is written into the other
 * namespace one delay later. Deliveries are timed from CLOCK_MONOTONIC by a timerfd armed at an
 * absolute time, under SCHED_FIFO, waking slightly early and polling the last microseconds, so
 * they land within a few microseconds of their due time. It stops after --duration-s or on
 * SIGTERM/SIGINT/SIGHUP, prints its statistics, and deletes the namespaces it created.
 * Self-contained (libc only): it builds and runs without the rest of lowat.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/if_tun.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LW_LINKEM_DEV "tun0"
#define LW_LINKEM_NETNS_DIR "/run/netns"
#define LW_LINKEM_MAX_NAME 64
#define LW_LINKEM_MAX_DURATION_S 3600
#define LW_LINKEM_MAX_DELAY_MS 10000.0
#define LW_LINKEM_MAX_BATCH_MS 100.0
#define LW_LINKEM_MIN_RATE_MBIT 0.01
#define LW_LINKEM_MAX_RATE_MBIT 100000.0
#define LW_LINKEM_DEFAULT_QUEUE_PKTS 1000
#define LW_LINKEM_MAX_QUEUE_PKTS 100000
#define LW_LINKEM_DEFAULT_MTU 1500
#define LW_LINKEM_MIN_MTU 68
#define LW_LINKEM_MAX_MTU 65535
/* Packets waiting in a queue are capped by --queue-pkts, but packets in flight (past the
 * queue, inside the delay) are not: at a high rate and a long delay they can be many. This caps
 * the memory for both directions together; a packet that finds it spent is dropped and counted
 * apart from queue drops. */
#define LW_LINKEM_POOL_BYTES (256u << 20)
/* Packets read from one TUN per wake-up before looking at the timer again, so a flood in one
 * direction cannot delay the deliveries that are due. */
#define LW_LINKEM_READ_BURST 32
/* What "on time" means in the statistics: the delivery accuracy this tool promises. */
#define LW_LINKEM_LATE_NS 100000
/* Measured on the 2-core VM this was written on: a timerfd wake-up is 100-600 us late on average
 * at normal priority, with outliers of several ms; 50-100 us under SCHED_FIFO, with outliers
 * near 200 us; a few us under SCHED_FIFO when woken 100 us early to poll the rest. So that is
 * the default. The polling costs CPU in proportion to the packet rate (see README.md). */
#define LW_LINKEM_DEFAULT_SPIN_US 100
#define LW_LINKEM_MAX_SPIN_US 1000
#define LW_LINKEM_DEFAULT_RT_PRIO 10
#define LW_LINKEM_NS_PER_S 1000000000ull
/* Lateness histogram: bucket 0 is under 1 us, bucket i under 2^i us, the last one the rest. */
#define LW_LINKEM_HIST_BUCKETS 24

/* epoll tags; the two TUN tags double as the index of the direction their packets take. */
enum lw_linkem_tag {
    LW_LINKEM_TAG_TUN_A, /* dir[0]: A -> B */
    LW_LINKEM_TAG_TUN_B, /* dir[1]: B -> A */
    LW_LINKEM_TAG_TIMER,
    LW_LINKEM_TAG_SIGNAL,
};

struct lw_linkem_pkt {
    struct lw_linkem_pkt *next;
    uint64_t depart_ns;  /* when its last bit has left the serializer */
    uint64_t deliver_ns; /* depart_ns + the one-way delay */
    uint32_t len;
    uint8_t data[];
};

/* Where packets of any direction come from and go back to. */
struct lw_linkem_pool {
    struct lw_linkem_pkt *free;
    size_t pkt_bytes; /* one packet with its header */
    size_t allocated;
    size_t max;
};

/* One end: a namespace and the TUN device in it. */
struct lw_linkem_side {
    const char *ns;
    const char *addr_arg; /* as given: "198.18.0.1/30" */
    struct in_addr addr;
    unsigned prefix;
    bool created; /* by us: delete it on the way out */
    int tun_fd;
};

/* One direction: what the stack of one namespace sends, on its way to the other. */
struct lw_linkem_dir {
    const struct lw_linkem_side *from, *to;
    struct lw_linkem_pkt *head, *tail; /* every packet not delivered yet, in departure order */
    struct lw_linkem_pkt *waiting;     /* first packet still queued (depart_ns > now), or NULL */
    uint32_t qlen;
    uint32_t max_qlen;
    uint64_t last_depart_ns;
    uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
    uint64_t drops_queue, drops_mem, drops_oversize, write_errors;
    int last_write_errno;
    uint64_t late_pkts, lateness_sum_ns, lateness_max_ns;
    uint64_t lateness_hist[LW_LINKEM_HIST_BUCKETS];
};

struct lw_linkem {
    struct lw_linkem_side side[2];
    struct lw_linkem_dir dir[2];
    struct lw_linkem_pool pool;
    double delay_ms;
    double rate_mbit;
    uint64_t delay_ns;
    uint64_t rate_bps;
    double batch_ms;   /* A -> B deliveries wait for the next multiple of this (0: none) */
    uint64_t batch_ns;
    uint32_t queue_pkts;
    uint32_t duration_s;
    uint32_t mtu;
    uint32_t spin_us;
    uint32_t rt_prio;
    bool create;
    sigset_t old_mask; /* what children get back before exec */
    int home_ns_fd;
    int epfd, timerfd, sigfd;
    uint64_t armed_ns;
    const char *stop_reason;
    uint8_t scratch[LW_LINKEM_MAX_MTU + 1]; /* a read from a TUN lands here first */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * LW_LINKEM_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- command line */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lowat-linkem --ns-a NAME --ns-b NAME --addr-a IP/PREFIX --addr-b IP/PREFIX\n"
            "                    --delay-ms D --rate-mbit R --duration-s T\n"
            "                    [--queue-pkts N] [--mtu BYTES] [--batch-ms-a B] [--create] [--spin-us US]\n"
            "                    [--rt-prio P]\n"
            "\n"
            "Emulates a link between two network namespaces: a TUN device \"" LW_LINKEM_DEV "\" in each, and\n"
            "per direction a drop-tail queue of N packets, a serializer at R Mbit/s and a one-way delay\n"
            "of D ms. Prints \"linkem ready: ...\" once packets flow, statistics at exit. Needs root.\n"
            "\n"
            "  --ns-a NAME, --ns-b NAME   the two namespaces (joined; created with --create)\n"
            "  --addr-a, --addr-b         addresses of tun0 in each, one subnet (198.18.0.1/30, ...2/30)\n"
            "  --delay-ms D               one-way delay, 0..%.0f (fractions allowed)\n"
            "  --rate-mbit R              rate of each direction, %g..%.0f Mbit/s\n"
            "  --queue-pkts N             queue limit per direction, 1..%d (default %d)\n"
            "  --duration-s T             stop after T seconds, 1..%d\n"
            "  --mtu BYTES                MTU of both TUN devices, %d..%d (default %d)\n"
            "  --batch-ms-a B             deliver what A sends in batches, at multiples of B ms (as Wi-Fi\n"
            "                             aggregation or a cellular scheduler bunch a client's ACKs), 0..%.0f\n"
            "  --create                   create the namespaces (they must not exist) and delete them at exit\n"
            "  --spin-us US               wake this early and poll until a delivery is due, 0..%d (default %d)\n"
            "  --rt-prio P                SCHED_FIFO priority of the loop, 0 for normal scheduling (default %d)\n"
            "  --help\n",
            LW_LINKEM_MAX_DELAY_MS, LW_LINKEM_MIN_RATE_MBIT, LW_LINKEM_MAX_RATE_MBIT, LW_LINKEM_MAX_QUEUE_PKTS,
            LW_LINKEM_DEFAULT_QUEUE_PKTS, LW_LINKEM_MAX_DURATION_S, LW_LINKEM_MIN_MTU, LW_LINKEM_MAX_MTU,
            LW_LINKEM_DEFAULT_MTU, LW_LINKEM_MAX_BATCH_MS, LW_LINKEM_MAX_SPIN_US, LW_LINKEM_DEFAULT_SPIN_US,
            LW_LINKEM_DEFAULT_RT_PRIO);
}

static bool parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* A name `ip netns` accepts and that is safe in a path: no '/', not "." or "..". */
static bool ns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > LW_LINKEM_MAX_NAME || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                  c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* "198.18.0.1/30": an IPv4 host address with a prefix that leaves room for a peer. */
static bool parse_addr(const char *s, struct lw_linkem_side *side)
{
    char buf[INET_ADDRSTRLEN + 4];
    const char *slash = strchr(s, '/');
    if (slash == NULL || (size_t)(slash - s) >= INET_ADDRSTRLEN) {
        return false;
    }
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = '\0';
    if (inet_pton(AF_INET, buf, &side->addr) != 1) {
        return false;
    }
    uint32_t prefix;
    if (!parse_u32(slash + 1, 1, 31, &prefix)) {
        return false;
    }
    side->prefix = prefix;
    side->addr_arg = s;
    return true;
}

static uint32_t prefix_mask(unsigned prefix)
{
    return prefix == 0 ? 0 : htonl(~0u << (32 - prefix));
}

/* Checks what one option cannot: both ends present, distinct, on one subnet. */
static bool check_pair(const struct lw_linkem *lk)
{
    const struct lw_linkem_side *a = &lk->side[0], *b = &lk->side[1];
    if (strcmp(a->ns, b->ns) == 0) {
        fprintf(stderr, "lowat-linkem: --ns-a and --ns-b must differ\n");
        return false;
    }
    uint32_t mask = prefix_mask(a->prefix);
    if (a->prefix != b->prefix || a->addr.s_addr == b->addr.s_addr ||
        (a->addr.s_addr & mask) != (b->addr.s_addr & mask)) {
        fprintf(stderr, "lowat-linkem: --addr-a and --addr-b must be two addresses of one subnet (%s, %s)\n",
                a->addr_arg, b->addr_arg);
        return false;
    }
    return true;
}

static bool bad_value(const char *opt, const char *val)
{
    fprintf(stderr, "lowat-linkem: bad value for --%s: '%s' (see --help)\n", opt, val);
    return false;
}

static bool parse_one(struct lw_linkem *lk, int opt, const char *name, const char *val)
{
    switch (opt) {
    case 'a':
    case 'b':
        lk->side[opt - 'a'].ns = val;
        return ns_name_ok(val) || bad_value(name, val);
    case 'A':
    case 'B':
        return parse_addr(val, &lk->side[opt - 'A']) || bad_value(name, val);
    case 'd':
        return parse_double(val, 0, LW_LINKEM_MAX_DELAY_MS, &lk->delay_ms) || bad_value(name, val);
    case 'r':
        return parse_double(val, LW_LINKEM_MIN_RATE_MBIT, LW_LINKEM_MAX_RATE_MBIT, &lk->rate_mbit) ||
               bad_value(name, val);
    case 'q':
        return parse_u32(val, 1, LW_LINKEM_MAX_QUEUE_PKTS, &lk->queue_pkts) || bad_value(name, val);
    case 't':
        if (!parse_u32(val, 1, UINT32_MAX, &lk->duration_s) || lk->duration_s > LW_LINKEM_MAX_DURATION_S) {
            fprintf(stderr, "lowat-linkem: --duration-s wants 1..%d seconds, not '%s'\n", LW_LINKEM_MAX_DURATION_S,
                    val);
            return false;
        }
        return true;
    case 'm':
        return parse_u32(val, LW_LINKEM_MIN_MTU, LW_LINKEM_MAX_MTU, &lk->mtu) || bad_value(name, val);
    case 'g':
        return parse_double(val, 0, LW_LINKEM_MAX_BATCH_MS, &lk->batch_ms) || bad_value(name, val);
    case 'c':
        lk->create = true;
        return true;
    case 's':
        return parse_u32(val, 0, LW_LINKEM_MAX_SPIN_US, &lk->spin_us) || bad_value(name, val);
    case 'p':
        return parse_u32(val, 0, 99, &lk->rt_prio) || bad_value(name, val);
    default:
        return false;
    }
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, struct lw_linkem *lk)
{
    static const struct option opts[] = {
        {"ns-a", required_argument, NULL, 'a'},
        {"ns-b", required_argument, NULL, 'b'},
        {"addr-a", required_argument, NULL, 'A'},
        {"addr-b", required_argument, NULL, 'B'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"rate-mbit", required_argument, NULL, 'r'},
        {"queue-pkts", required_argument, NULL, 'q'},
        {"duration-s", required_argument, NULL, 't'},
        {"mtu", required_argument, NULL, 'm'},
        {"batch-ms-a", required_argument, NULL, 'g'},
        {"create", no_argument, NULL, 'c'},
        {"spin-us", required_argument, NULL, 's'},
        {"rt-prio", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool seen_delay = false, seen_rate = false;
    int opt, idx = 0;
    while ((opt = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 0;
        }
        if (opt == '?' || !parse_one(lk, opt, opts[idx].name, optarg)) {
            return 2;
        }
        seen_delay |= opt == 'd';
        seen_rate |= opt == 'r';
    }
    if (optind != argc) {
        fprintf(stderr, "lowat-linkem: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (lk->side[0].ns == NULL || lk->side[1].ns == NULL || lk->side[0].addr_arg == NULL ||
        lk->side[1].addr_arg == NULL || !seen_delay || !seen_rate || lk->duration_s == 0) {
        fprintf(stderr, "lowat-linkem: --ns-a, --ns-b, --addr-a, --addr-b, --delay-ms, --rate-mbit and "
                        "--duration-s are required (see --help)\n");
        return 2;
    }
    return check_pair(lk) ? -1 : 2;
}

/* ---------------------------------------------------------------- namespaces and TUN devices */

/* Runs `ip ARGS...` and waits for it; 0 if it exited 0. */
static int run_ip(const struct lw_linkem *lk, char *const argv[])
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "lowat-linkem: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &lk->old_mask, NULL);
        execvp("ip", argv);
        execv("/usr/sbin/ip", argv);
        execv("/sbin/ip", argv);
        fprintf(stderr, "lowat-linkem: cannot run ip (iproute2): %s\n", strerror(errno));
        _exit(127);
    }
    int status;
    /* Signals are blocked (they arrive through the signalfd), so this cannot be interrupted. */
    if (waitpid(pid, &status, 0) < 0) {
        fprintf(stderr, "lowat-linkem: waitpid: %s\n", strerror(errno));
        return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int create_ns(struct lw_linkem *lk, struct lw_linkem_side *s)
{
    char path[sizeof(LW_LINKEM_NETNS_DIR) + LW_LINKEM_MAX_NAME + 2];
    snprintf(path, sizeof(path), "%s/%s", LW_LINKEM_NETNS_DIR, s->ns);
    if (access(path, F_OK) == 0) {
        fprintf(stderr,
                "lowat-linkem: namespace %s exists already: drop --create to use it, or delete it (ip netns del %s)\n",
                s->ns, s->ns);
        return -1;
    }
    char *argv[] = {"ip", "netns", "add", (char *)s->ns, NULL};
    if (run_ip(lk, argv) < 0) {
        fprintf(stderr, "lowat-linkem: ip netns add %s failed\n", s->ns);
        return -1;
    }
    s->created = true;
    return 0;
}

static void delete_ns(struct lw_linkem *lk, struct lw_linkem_side *s)
{
    if (!s->created) {
        return;
    }
    char *argv[] = {"ip", "netns", "del", (char *)s->ns, NULL};
    if (run_ip(lk, argv) < 0) {
        fprintf(stderr, "lowat-linkem: ip netns del %s failed: delete it by hand\n", s->ns);
    }
    s->created = false;
}

static int ifreq_ioctl(int sock, unsigned long req, struct ifreq *ifr, const char *what, const char *ns)
{
    if (ioctl(sock, req, ifr) < 0) {
        fprintf(stderr, "lowat-linkem: %s on %s in namespace %s: %s\n", what, ifr->ifr_name, ns, strerror(errno));
        return -1;
    }
    return 0;
}

static int set_up(int sock, const char *dev, const char *ns)
{
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
    if (ifreq_ioctl(sock, SIOCGIFFLAGS, &ifr, "SIOCGIFFLAGS", ns) < 0) {
        return -1;
    }
    ifr.ifr_flags |= IFF_UP;
    return ifreq_ioctl(sock, SIOCSIFFLAGS, &ifr, "bringing up", ns);
}

/* Address, netmask (the kernel then adds the subnet route), MTU, up; and lo up, which a fresh
 * namespace has down. Runs inside the side's namespace: the socket belongs to it. */
static int configure_tun(const struct lw_linkem *lk, const struct lw_linkem_side *s)
{
    int rc = -1;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        fprintf(stderr, "lowat-linkem: socket in namespace %s: %s\n", s->ns, strerror(errno));
        return -1;
    }
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", LW_LINKEM_DEV);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr = s->addr;
    if (ifreq_ioctl(sock, SIOCSIFADDR, &ifr, "setting the address", s->ns) < 0) {
        goto Exit;
    }
    sin->sin_addr.s_addr = prefix_mask(s->prefix);
    if (ifreq_ioctl(sock, SIOCSIFNETMASK, &ifr, "setting the netmask", s->ns) < 0) {
        goto Exit;
    }
    memset(&ifr.ifr_ifru, 0, sizeof(ifr.ifr_ifru));
    ifr.ifr_mtu = (int)lk->mtu;
    if (ifreq_ioctl(sock, SIOCSIFMTU, &ifr, "setting the MTU", s->ns) < 0) {
        goto Exit;
    }
    if (set_up(sock, LW_LINKEM_DEV, s->ns) < 0 || set_up(sock, "lo", s->ns) < 0) {
        goto Exit;
    }
    rc = 0;
Exit:
    close(sock);
    return rc;
}

/* The TUN device is created in the namespace the process is in when it is attached, so: enter
 * the side's namespace, open and configure tun0 there, come home. The device lives as long as
 * the descriptor: it disappears with us, even after a SIGKILL. */
static int open_tun(struct lw_linkem *lk, struct lw_linkem_side *s)
{
    int rc = -1, fd = -1;
    char path[sizeof(LW_LINKEM_NETNS_DIR) + LW_LINKEM_MAX_NAME + 2];
    snprintf(path, sizeof(path), "%s/%s", LW_LINKEM_NETNS_DIR, s->ns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) {
        fprintf(stderr, "lowat-linkem: namespace %s: %s%s\n", s->ns, strerror(errno),
                errno == ENOENT ? " (create it with ip netns add, or pass --create)" : "");
        return -1;
    }
    if (setns(nsfd, CLONE_NEWNET) < 0) {
        fprintf(stderr, "lowat-linkem: entering namespace %s: %s\n", s->ns, strerror(errno));
        close(nsfd);
        return -1;
    }
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "lowat-linkem: /dev/net/tun: %s\n", strerror(errno));
        goto Exit;
    }
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", LW_LINKEM_DEV);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "lowat-linkem: creating %s in namespace %s: %s%s\n", LW_LINKEM_DEV, s->ns, strerror(errno),
                errno == EBUSY ? " (another linkem is attached there?)" : "");
        goto Exit;
    }
    if (configure_tun(lk, s) < 0) {
        goto Exit;
    }
    s->tun_fd = fd;
    fd = -1;
    rc = 0;
Exit:
    if (fd >= 0) {
        close(fd);
    }
    close(nsfd);
    if (setns(lk->home_ns_fd, CLONE_NEWNET) < 0) {
        fprintf(stderr, "lowat-linkem: returning to the original namespace: %s\n", strerror(errno));
        rc = -1;
    }
    return rc;
}

static int setup_sides(struct lw_linkem *lk)
{
    lk->home_ns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (lk->home_ns_fd < 0) {
        fprintf(stderr, "lowat-linkem: /proc/self/ns/net: %s\n", strerror(errno));
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (lk->create && create_ns(lk, &lk->side[i]) < 0) {
            return -1;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (open_tun(lk, &lk->side[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- packets */

static void pool_init(struct lw_linkem_pool *pool, uint32_t mtu)
{
    pool->pkt_bytes = sizeof(struct lw_linkem_pkt) + mtu;
    pool->max = LW_LINKEM_POOL_BYTES / pool->pkt_bytes;
}

static struct lw_linkem_pkt *pool_get(struct lw_linkem_pool *pool)
{
    struct lw_linkem_pkt *p = pool->free;
    if (p != NULL) {
        pool->free = p->next;
        return p;
    }
    if (pool->allocated >= pool->max) {
        return NULL;
    }
    p = malloc(pool->pkt_bytes);
    if (p != NULL) {
        pool->allocated++;
    }
    return p;
}

static void pool_put(struct lw_linkem_pool *pool, struct lw_linkem_pkt *p)
{
    p->next = pool->free;
    pool->free = p;
}

static void pool_dispose(struct lw_linkem_pool *pool)
{
    while (pool->free != NULL) { /* bounded: pool->allocated packets at most */
        struct lw_linkem_pkt *p = pool->free;
        pool->free = p->next;
        free(p);
    }
}

/* Packets whose last bit has left the serializer by `now` are no longer queued (they fly). */
static void advance_queue(struct lw_linkem_dir *d, uint64_t now)
{
    while (d->waiting != NULL && d->waiting->depart_ns <= now) {
        d->waiting = d->waiting->next;
        d->qlen--;
    }
}

/* Time to put len bytes on the wire at the configured rate, at least 1 ns so that departures
 * strictly increase. */
static uint64_t serialization_ns(const struct lw_linkem *lk, uint32_t len)
{
    uint64_t ns = ((uint64_t)len * 8 * LW_LINKEM_NS_PER_S + lk->rate_bps / 2) / lk->rate_bps;
    return ns > 0 ? ns : 1;
}

static void enqueue(struct lw_linkem *lk, struct lw_linkem_dir *d, const uint8_t *data, uint32_t len, uint64_t now)
{
    d->rx_pkts++;
    d->rx_bytes += len;
    advance_queue(d, now);
    if (len > lk->mtu) {
        d->drops_oversize++;
        return;
    }
    if (d->qlen >= lk->queue_pkts) {
        d->drops_queue++;
        return;
    }
    struct lw_linkem_pkt *p = pool_get(&lk->pool);
    if (p == NULL) {
        d->drops_mem++;
        return;
    }
    memcpy(p->data, data, len);
    p->len = len;
    p->next = NULL;
    uint64_t start = now > d->last_depart_ns ? now : d->last_depart_ns;
    p->depart_ns = start + serialization_ns(lk, len);
    p->deliver_ns = p->depart_ns + lk->delay_ns;
    if (d == &lk->dir[0] && lk->batch_ns != 0) {
        /* A grid of release times keeps deliveries in order. */
        p->deliver_ns = (p->deliver_ns + lk->batch_ns - 1) / lk->batch_ns * lk->batch_ns;
    }
    d->last_depart_ns = p->depart_ns;
    if (d->tail != NULL) {
        d->tail->next = p;
    } else {
        d->head = p;
    }
    d->tail = p;
    if (d->waiting == NULL) {
        d->waiting = p;
    }
    d->qlen++;
    if (d->qlen > d->max_qlen) {
        d->max_qlen = d->qlen;
    }
}

/* Reads what the TUN of d's source has, a burst at most. 0, or -1 if the device failed. */
static int read_burst(struct lw_linkem *lk, struct lw_linkem_dir *d)
{
    for (int i = 0; i < LW_LINKEM_READ_BURST; i++) {
        ssize_t n = read(d->from->tun_fd, lk->scratch, sizeof(lk->scratch));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return 0;
            }
            fprintf(stderr, "lowat-linkem: reading %s in %s: %s\n", LW_LINKEM_DEV, d->from->ns, strerror(errno));
            return -1;
        }
        if (n == 0) {
            return 0;
        }
        enqueue(lk, d, lk->scratch, (uint32_t)n, now_ns());
    }
    return 0;
}

static void record_lateness(struct lw_linkem_dir *d, uint64_t late_ns)
{
    uint64_t us = late_ns / 1000;
    int bucket = us == 0 ? 0 : 64 - __builtin_clzll(us);
    if (bucket >= LW_LINKEM_HIST_BUCKETS) {
        bucket = LW_LINKEM_HIST_BUCKETS - 1;
    }
    d->lateness_hist[bucket]++;
}

/* An upper bound of the lateness quantile q (per mille), in us: a power of two. */
static uint64_t lateness_quantile_us(const struct lw_linkem_dir *d, uint64_t total, uint64_t q_permille)
{
    uint64_t seen = 0;
    for (int i = 0; i < LW_LINKEM_HIST_BUCKETS; i++) {
        seen += d->lateness_hist[i];
        if (seen * 1000 >= total * q_permille) {
            return 1ull << i;
        }
    }
    return 1ull << (LW_LINKEM_HIST_BUCKETS - 1);
}

static void deliver_due(struct lw_linkem *lk, struct lw_linkem_dir *d, uint64_t now)
{
    advance_queue(d, now); /* before freeing: `waiting` must not point at a delivered packet */
    /* Bounded by the packets queued, which is bounded by the pool. */
    while (d->head != NULL && d->head->deliver_ns <= now) {
        struct lw_linkem_pkt *p = d->head;
        uint64_t late = now_ns() - p->deliver_ns;
        if (write(d->to->tun_fd, p->data, p->len) == (ssize_t)p->len) {
            d->tx_pkts++;
            d->tx_bytes += p->len;
        } else {
            d->write_errors++; /* e.g. a packet the other stack refuses: the link loses it */
            d->last_write_errno = errno;
        }
        d->lateness_sum_ns += late;
        if (late > d->lateness_max_ns) {
            d->lateness_max_ns = late;
        }
        if (late > LW_LINKEM_LATE_NS) {
            d->late_pkts++;
        }
        record_lateness(d, late);
        d->head = p->next;
        if (d->head == NULL) {
            d->tail = NULL;
        }
        pool_put(&lk->pool, p);
    }
}

/* ---------------------------------------------------------------- the loop */

static int arm_timer(struct lw_linkem *lk, uint64_t at_ns)
{
    if (at_ns == lk->armed_ns) {
        return 0;
    }
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(at_ns / LW_LINKEM_NS_PER_S);
    its.it_value.tv_nsec = (long)(at_ns % LW_LINKEM_NS_PER_S);
    if (timerfd_settime(lk->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        fprintf(stderr, "lowat-linkem: timerfd_settime: %s\n", strerror(errno));
        return -1;
    }
    lk->armed_ns = at_ns;
    return 0;
}

static int add_fd(struct lw_linkem *lk, int fd, enum lw_linkem_tag tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
    if (epoll_ctl(lk->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        fprintf(stderr, "lowat-linkem: epoll_ctl: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int setup_loop(struct lw_linkem *lk)
{
    lk->epfd = epoll_create1(EPOLL_CLOEXEC);
    lk->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (lk->epfd < 0 || lk->timerfd < 0) {
        fprintf(stderr, "lowat-linkem: epoll/timerfd: %s\n", strerror(errno));
        return -1;
    }
    if (add_fd(lk, lk->side[0].tun_fd, LW_LINKEM_TAG_TUN_A) < 0 ||
        add_fd(lk, lk->side[1].tun_fd, LW_LINKEM_TAG_TUN_B) < 0 || add_fd(lk, lk->timerfd, LW_LINKEM_TAG_TIMER) < 0 ||
        add_fd(lk, lk->sigfd, LW_LINKEM_TAG_SIGNAL) < 0) {
        return -1;
    }
    return 0;
}

static int handle_event(struct lw_linkem *lk, const struct epoll_event *ev)
{
    switch (ev->data.u32) {
    case LW_LINKEM_TAG_TUN_A:
    case LW_LINKEM_TAG_TUN_B:
        return read_burst(lk, &lk->dir[ev->data.u32]);
    case LW_LINKEM_TAG_TIMER: {
        uint64_t expirations;
        if (read(lk->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
            fprintf(stderr, "lowat-linkem: reading the timerfd: %s\n", strerror(errno));
            return -1;
        }
        lk->armed_ns = 0; /* fired: settime again even for the same instant */
        return 0;
    }
    case LW_LINKEM_TAG_SIGNAL: {
        struct signalfd_siginfo si;
        if (read(lk->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            lk->stop_reason = strsignal((int)si.ssi_signo);
        }
        return 0;
    }
    default:
        return 0;
    }
}

/* One event loop for both directions: deliver what is due, then either poll (a delivery is due
 * within --spin-us) or arm the timer --spin-us before the next due time (absolute, so a late
 * wake-up does not push later deliveries back) and sleep until packets, the timer or a signal
 * come. Polling goes through epoll too, so arrivals keep exact timestamps and signals are seen.
 * Bounded by the end of --duration-s. */
static int run(struct lw_linkem *lk)
{
    uint64_t end_ns = now_ns() + (uint64_t)lk->duration_s * LW_LINKEM_NS_PER_S;
    uint64_t spin_ns = (uint64_t)lk->spin_us * 1000;
    while (lk->stop_reason == NULL) {
        uint64_t now = now_ns();
        if (now >= end_ns) {
            lk->stop_reason = "duration reached";
            break;
        }
        uint64_t next = end_ns;
        for (int i = 0; i < 2; i++) {
            deliver_due(lk, &lk->dir[i], now);
            if (lk->dir[i].head != NULL && lk->dir[i].head->deliver_ns < next) {
                next = lk->dir[i].head->deliver_ns;
            }
        }
        int timeout_ms = 0;
        if (next > now + spin_ns) {
            if (arm_timer(lk, next - spin_ns) < 0) {
                return -1;
            }
            timeout_ms = -1;
        }
        struct epoll_event evs[4];
        int n = epoll_wait(lk->epfd, evs, 4, timeout_ms);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "lowat-linkem: epoll_wait: %s\n", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n; i++) {
            if (handle_event(lk, &evs[i]) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- start, report, stop */

/* The wire does not wait for a CPU: under SCHED_FIFO the loop preempts the endpoints' work on
 * its core when a delivery is due. Children (ip netns del at exit) start at normal priority. */
static void go_realtime(const struct lw_linkem *lk)
{
    if (lk->rt_prio == 0) {
        return;
    }
    struct sched_param sp = {.sched_priority = (int)lk->rt_prio};
    if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0) {
        fprintf(stderr, "lowat-linkem: warning: SCHED_FIFO priority %" PRIu32 ": %s (delivery times will vary more)\n",
                lk->rt_prio, strerror(errno));
    }
}

static void print_ready(const struct lw_linkem *lk)
{
    char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &lk->side[0].addr, a, sizeof(a));
    inet_ntop(AF_INET, &lk->side[1].addr, b, sizeof(b));
    printf("linkem ready: %s(%s) <-> %s(%s) delay %gms rate %gMbit queue %" PRIu32, lk->side[0].ns, a, lk->side[1].ns,
           b, lk->delay_ms, lk->rate_mbit, lk->queue_pkts);
    if (lk->batch_ns != 0) {
        printf(" batches from %s every %gms", lk->side[0].ns, lk->batch_ms);
    }
    printf("\n");
    fflush(stdout);
}

/* Packets still queued or in flight at the end are lost with the link; count and free them. */
static uint64_t drain(struct lw_linkem *lk, struct lw_linkem_dir *d)
{
    uint64_t n = 0;
    while (d->head != NULL) { /* bounded by the pool */
        struct lw_linkem_pkt *p = d->head;
        d->head = p->next;
        pool_put(&lk->pool, p);
        n++;
    }
    d->tail = d->waiting = NULL;
    d->qlen = 0;
    return n;
}

/* Three lines per direction: what went through, what was lost and why, how punctual it was. */
static void print_stats(struct lw_linkem *lk, double elapsed_s)
{
    printf("linkem stopping after %.3f s: %s\n", elapsed_s, lk->stop_reason ? lk->stop_reason : "error");
    for (int i = 0; i < 2; i++) {
        struct lw_linkem_dir *d = &lk->dir[i];
        const char *from = d->from->ns, *to = d->to->ns;
        uint64_t left = drain(lk, d);
        uint64_t tried = d->tx_pkts + d->write_errors;
        printf("linkem stats %s -> %s: delivered %" PRIu64 " packets %" PRIu64 " bytes, received %" PRIu64
               " packets %" PRIu64 " bytes, max queue %" PRIu32 " packets\n",
               from, to, d->tx_pkts, d->tx_bytes, d->rx_pkts, d->rx_bytes, d->max_qlen);
        char why[80] = "";
        if (d->write_errors > 0) {
            snprintf(why, sizeof(why), " (%s)", strerror(d->last_write_errno));
        }
        printf("linkem stats %s -> %s: drops queue-full %" PRIu64 " oversize %" PRIu64 " no-memory %" PRIu64
               " write-error %" PRIu64 "%s left-at-exit %" PRIu64 "\n",
               from, to, d->drops_queue, d->drops_oversize, d->drops_mem, d->write_errors, why, left);
        printf("linkem stats %s -> %s: lateness mean %" PRIu64 " us p50 <%" PRIu64 " us p99 <%" PRIu64
               " us p99.9 <%" PRIu64 " us max %" PRIu64 " us, %" PRIu64 " packets over %d us\n",
               from, to, tried ? d->lateness_sum_ns / tried / 1000 : 0, lateness_quantile_us(d, tried, 500),
               lateness_quantile_us(d, tried, 990), lateness_quantile_us(d, tried, 999), d->lateness_max_ns / 1000,
               d->late_pkts, LW_LINKEM_LATE_NS / 1000);
    }
    fflush(stdout);
}

static void init(struct lw_linkem *lk)
{
    memset(lk, 0, sizeof(*lk));
    lk->queue_pkts = LW_LINKEM_DEFAULT_QUEUE_PKTS;
    lk->mtu = LW_LINKEM_DEFAULT_MTU;
    lk->spin_us = LW_LINKEM_DEFAULT_SPIN_US;
    lk->rt_prio = LW_LINKEM_DEFAULT_RT_PRIO;
    lk->home_ns_fd = lk->epfd = lk->timerfd = lk->sigfd = -1;
    for (int i = 0; i < 2; i++) {
        lk->side[i].tun_fd = -1;
        lk->dir[i].from = &lk->side[i];
        lk->dir[i].to = &lk->side[1 - i];
    }
}

static void dispose(struct lw_linkem *lk)
{
    int fds[] = {lk->epfd, lk->timerfd, lk->sigfd, lk->side[0].tun_fd, lk->side[1].tun_fd, lk->home_ns_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    for (int i = 0; i < 2; i++) {
        drain(lk, &lk->dir[i]);
        delete_ns(lk, &lk->side[i]);
    }
    pool_dispose(&lk->pool);
}

/* Signals go to a signalfd read by the loop; blocked from here on, so one arriving during set-up
 * waits for the loop, which then stops at once and the namespaces are still deleted. SIGPIPE is
 * ignored: a reader of our stdout that went away must not cost the clean-up. */
static int block_signals(struct lw_linkem *lk)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, &lk->old_mask) < 0) {
        return -1;
    }
    lk->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (lk->sigfd < 0) {
        fprintf(stderr, "lowat-linkem: signalfd: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct lw_linkem lk;
    int status = 1;
    init(&lk);
    int rc = parse_args(argc, argv, &lk);
    if (rc >= 0) {
        return rc;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "lowat-linkem: must run as root (it creates network namespaces and TUN devices)\n");
        return 1;
    }
    lk.delay_ns = (uint64_t)(lk.delay_ms * 1e6 + 0.5);
    lk.batch_ns = (uint64_t)(lk.batch_ms * 1e6 + 0.5);
    lk.rate_bps = (uint64_t)(lk.rate_mbit * 1e6 + 0.5);
    pool_init(&lk.pool, lk.mtu);
    if (block_signals(&lk) < 0 || setup_sides(&lk) < 0 || setup_loop(&lk) < 0) {
        goto Exit;
    }
    go_realtime(&lk);
    print_ready(&lk);
    uint64_t start_ns = now_ns();
    rc = run(&lk);
    print_stats(&lk, (double)(now_ns() - start_ns) / 1e9);
    status = rc < 0 ? 1 : 0;
Exit:
    dispose(&lk);
    return status;
}
