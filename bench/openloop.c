/*
 * openloop: an open-loop HTTP/1.1 load generator that corrects for
 * coordinated omission, for bench/latency.py.
 *
 *   openloop -p PORT -P PATH -r RATE -d SECONDS [-w WARMUP] [-c MAXCONN]
 *            [-s SEED] [-u] [-t DRAIN] [-T TIMELINE]
 *   openloop -p PORT -P PATH -C CLIENTS -d SECONDS [-w WARMUP]
 *
 * Requests arrive on a schedule fixed before the run (Poisson arrivals at
 * RATE a second, the same sequence for the same SEED; -u: evenly spaced),
 * whatever the server does: each goes out on an idle keep-alive connection,
 * or a new one (at most MAXCONN), at its arrival time. Its latency is
 * counted from that arrival time, not from when it could be sent, so a
 * server that stalls is charged for every request that arrived meanwhile
 * (the coordinated omission of closed-loop clients such as wrk, whose
 * connections stop asking while they wait). Requests that arrive in the
 * first WARMUP seconds are sent but not counted. One thread, epoll, no
 * dependencies (-T: each counted request's arrival, as Unix time in
 * seconds, and its latency in microseconds, one line each, to a file: the
 * timeline bench/timeline.py lays beside the server's own events). No
 * dependencies: on 2 CPUs the client must not eat the server's CPU, as a
 * Python client would (about 5 us of CPU a request here, against wrk's 16).
 *
 * -C CLIENTS: a closed loop instead (bench/pages.py), as wrk's: CLIENTS
 * connections, each sending its next request as soon as its answer came,
 * latency counted from the send. What counts is what was answered between
 * the end of the warm-up and the end of the run, so the figures are the
 * steady state's: a pool that runs every admitted request at once answers
 * its first requests only after all of them have run, and a short run
 * started cold (wrk's) would count that ramp as its throughput. Requests
 * still out at the end are left unanswered and reported (in_flight_at_end).
 *
 * Traffic goes to 127.0.0.1 only. Prints one JSON object: latencies in
 * milliseconds (p50 to p99.99 and max; a request unanswered when the run
 * ends, or answered with an error status, counts as the longest: a
 * percentile that falls on one is null), errors, the achieved rate, how late the
 * client itself sent (dispatch lag: its own health), its CPU seconds.
 *
 * Build: cc -O2 -o openloop openloop.c -lm
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (64 * 1024)
#define HEAD_MAX (32 * 1024)
#define UNANSWERED UINT32_MAX

enum state { FREE, CONNECTING, IDLE, BUSY };
enum body { B_NONE, B_LENGTH, B_CHUNK_SIZE, B_CHUNK_DATA, B_CHUNK_CRLF, B_TRAILER, B_UNTIL_CLOSE };

struct conn {
	int fd;
	enum state state;
	long req;          /* the request it carries, or -1 */
	int reused;        /* has carried a request before: a close before any answer is retried */
	int got_bytes;     /* bytes of this answer so far */
	size_t sent;       /* bytes of the request written */
	char head[HEAD_MAX];
	size_t head_len;
	int in_body;
	enum body body;
	long long left;    /* body bytes (or chunk bytes) left */
	int status;
	int close_after;
	int in_ext;        /* in a chunk extension */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* xorshift64*: the same arrivals for the same seed, on every contender. */
static uint64_t rng_state;
static double uniform01(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return ((rng_state * 2685821657736338717ULL) >> 11) * (1.0 / 9007199254740992.0);
}

static struct conn *conns;
static int max_conns, open_conns, opened_total;
static int *idle_stack, idle_top;
static int epfd;
static struct sockaddr_in addr;
static char request[2048];
static size_t request_len;

static int closed_clients; /* -C: a closed loop of that many connections */
static long cap;           /* entries of the per-request arrays */
static int64_t span_ns, warmup_ns;

static int64_t *arrival;    /* ns after start (closed loop: when it was sent) */
static int64_t *ended;      /* ns after start when answered or failed, or -1 */
static int64_t *dispatched; /* ns after start, when written */
static uint32_t *latency_us;
static char *retried;
static char *bad; /* answered with a status outside 2xx and 3xx */
static long total, counted_from;
static long *pending;
static long pend_head, pend_tail, ring; /* a ring of `ring` entries */
static long done, status_errors, conn_errors, retries;
static int64_t start;

static void fail(const char *what)
{
	fprintf(stderr, "openloop: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void push_pending_front(long req)
{
	/* A retried request goes first: it arrived before the others. */
	pend_head = (pend_head - 1 + ring) % ring;
	pending[pend_head] = req;
}

static void finish(long req, int64_t t)
{
	int64_t waited = t - (start + arrival[req]);
	latency_us[req] = waited < 0 ? 0 : (uint32_t)(waited / 1000);
	ended[req] = t - start;
	done++;
}

static void close_conn(struct conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->state == IDLE) {
		for (int i = 0; i < idle_top; i++) {
			if (idle_stack[i] == c - conns) {
				idle_stack[i] = idle_stack[--idle_top];
				break;
			}
		}
	}
	c->state = FREE;
	c->fd = -1;
	open_conns--;
}

/* The connection broke: its request is retried once if the connection had
 * served before and nothing of the answer came (a keep-alive connection the
 * server closed as it was reused), else it is an error. */
static void broken(struct conn *c)
{
	long req = c->req;
	int retry = req >= 0 && c->reused && c->got_bytes == 0 && !retried[req];
	close_conn(c);
	if (req < 0)
		return;
	if (retry) {
		retried[req] = 1;
		retries++;
		push_pending_front(req);
	} else {
		conn_errors++;
		finish(req, now_ns());
		latency_us[req] = UNANSWERED;
	}
}

static int open_conn(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("socket");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	int slot = -1;
	for (int i = 0; i < max_conns; i++) {
		if (conns[i].state == FREE) {
			slot = i;
			break;
		}
	}
	struct conn *c = &conns[slot];
	memset(c, 0, offsetof(struct conn, head));
	c->fd = fd;
	c->state = CONNECTING;
	c->req = -1;
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)slot};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		fail("epoll_ctl");
	open_conns++;
	opened_total++;
	return slot;
}

static void want_write(struct conn *c, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
				 .data.u32 = (uint32_t)(c - conns)};
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void write_request(struct conn *c)
{
	while (c->sent < request_len) {
		ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
		if (n < 0) {
			if (errno == EAGAIN) {
				want_write(c, 1);
				return;
			}
			broken(c);
			return;
		}
		c->sent += (size_t)n;
	}
	want_write(c, 0);
}

static void send_on(struct conn *c, long req)
{
	c->req = req;
	c->state = BUSY;
	c->sent = 0;
	c->got_bytes = 0;
	c->head_len = 0;
	c->in_body = 0;
	c->status = 0;
	c->close_after = 0;
	dispatched[req] = now_ns() - start;
	write_request(c);
}

static void answer_done(struct conn *c)
{
	long req = c->req;
	if (c->status < 200 || c->status >= 400)
		bad[req] = 1;
	finish(req, now_ns());
	c->req = -1;
	c->reused = 1;
	if (c->close_after) {
		close_conn(c);
		return;
	}
	c->state = IDLE;
	idle_stack[idle_top++] = (int)(c - conns);
}

static const char *find_header(const char *head, const char *name)
{
	size_t len = strlen(name);
	for (const char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
		if (strncasecmp(line + 2, name, len) == 0 && line[2 + len] == ':') {
			const char *value = line + 3 + len;
			while (*value == ' ' || *value == '\t')
				value++;
			return value;
		}
	}
	return NULL;
}

/* The head is complete (head[0..len) ends with CRLF CRLF): how its body is framed. */
static void parse_head(struct conn *c)
{
	c->head[c->head_len] = '\0';
	c->status = atoi(c->head + 9);
	const char *te = find_header(c->head, "Transfer-Encoding");
	const char *cl = find_header(c->head, "Content-Length");
	const char *connection = find_header(c->head, "Connection");
	c->close_after = connection && strncasecmp(connection, "close", 5) == 0;
	if (strncmp(c->head, "HTTP/1.0", 8) == 0 && !(connection && strncasecmp(connection, "keep-alive", 10) == 0))
		c->close_after = 1;
	c->in_body = 1;
	if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200)) {
		c->body = B_NONE;
	} else if (te && strncasecmp(te, "chunked", 7) == 0) {
		c->body = B_CHUNK_SIZE;
		c->left = -1;
	} else if (cl) {
		c->body = B_LENGTH;
		c->left = atoll(cl);
	} else {
		c->body = B_UNTIL_CLOSE;
		c->close_after = 1;
	}
}

/* Consumes body bytes; returns how many were used, and sets *complete. */
static size_t eat_body(struct conn *c, const char *p, size_t n, int *complete)
{
	size_t used = 0;
	*complete = 0;
	while (used < n || c->body == B_NONE || (c->body == B_LENGTH && c->left == 0)) {
		switch (c->body) {
		case B_NONE:
			*complete = 1;
			return used;
		case B_LENGTH: {
			size_t take = (size_t)c->left < n - used ? (size_t)c->left : n - used;
			c->left -= (long long)take;
			used += take;
			if (c->left == 0) {
				*complete = 1;
				return used;
			}
			break;
		}
		case B_UNTIL_CLOSE:
			return n;
		case B_CHUNK_SIZE: {
			/* hex digits, an optional extension (ignored), CRLF */
			char ch = p[used++];
			if (ch == '\n') {
				c->in_ext = 0;
				if (c->left <= 0) {
					c->body = B_TRAILER;
					c->left = 0;
				} else {
					c->body = B_CHUNK_DATA;
				}
			} else if (ch == ';') {
				c->in_ext = 1;
			} else if (!c->in_ext) {
				int digit = (ch >= '0' && ch <= '9') ? ch - '0'
					    : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
					    : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10 : -1;
				if (digit >= 0)
					c->left = (c->left < 0 ? 0 : c->left) * 16 + digit;
			}
			break;
		}
		case B_CHUNK_DATA: {
			size_t take = (size_t)c->left < n - used ? (size_t)c->left : n - used;
			c->left -= (long long)take;
			used += take;
			if (c->left == 0)
				c->body = B_CHUNK_CRLF;
			break;
		}
		case B_CHUNK_CRLF:
			if (p[used++] == '\n') {
				c->body = B_CHUNK_SIZE;
				c->left = -1;
			}
			break;
		case B_TRAILER:
			/* lines until an empty one; left counts the current line's length */
			if (p[used] == '\n') {
				used++;
				if (c->left == 0) {
					*complete = 1;
					return used;
				}
				c->left = 0;
			} else {
				if (p[used] != '\r')
					c->left++;
				used++;
			}
			break;
		}
	}
	return used;
}

static void readable(struct conn *c)
{
	static char buf[READ_BUF];
	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof buf);
		if (n == 0) {
			if (c->state == BUSY && c->in_body && c->body == B_UNTIL_CLOSE) {
				answer_done(c);
				return;
			}
			if (c->state == BUSY)
				broken(c);
			else
				close_conn(c);
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN)
				return;
			if (c->state == BUSY)
				broken(c);
			else
				close_conn(c);
			return;
		}
		if (c->state != BUSY) {
			close_conn(c); /* bytes nobody asked for */
			return;
		}
		c->got_bytes += (int)n;
		size_t at = 0;
		while (at < (size_t)n) {
			if (!c->in_body) {
				/* Head bytes, one at a time up to the blank line. */
				while (at < (size_t)n && !c->in_body) {
					if (c->head_len >= HEAD_MAX - 1) {
						broken(c);
						return;
					}
					c->head[c->head_len++] = buf[at++];
					if (c->head_len >= 4 && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0)
						parse_head(c);
				}
				if (!c->in_body)
					break;
			}
			int complete;
			at += eat_body(c, buf + at, (size_t)n - at, &complete);
			if (complete) {
				if (at < (size_t)n) {
					/* More than one answer for one request: not HTTP we understand. */
					answer_done(c);
					if (c->state != FREE)
						close_conn(c);
					return;
				}
				answer_done(c);
				return;
			}
		}
	}
}

static void dispatch(void)
{
	while (pend_head != pend_tail) {
		long req = pending[pend_head];
		if (idle_top > 0) {
			pend_head = (pend_head + 1) % ring;
			send_on(&conns[idle_stack[--idle_top]], req);
		} else if (open_conns < max_conns) {
			int slot = open_conn();
			if (slot < 0) {
				pend_head = (pend_head + 1) % ring;
				conn_errors++;
				finish(req, now_ns());
				latency_us[req] = UNANSWERED;
				continue;
			}
			pend_head = (pend_head + 1) % ring;
			conns[slot].req = req; /* sent once connected */
		} else {
			return; /* waits for a connection; its clock runs */
		}
	}
}

/* Room for `need` requests in every per-request array (new entries unanswered). */
static void grow(long need)
{
	if (need <= cap)
		return;
	long was = cap;
	cap = need > cap * 2 ? need : cap * 2;
	arrival = realloc(arrival, sizeof *arrival * (size_t)cap);
	ended = realloc(ended, sizeof *ended * (size_t)cap);
	dispatched = realloc(dispatched, sizeof *dispatched * (size_t)cap);
	latency_us = realloc(latency_us, sizeof *latency_us * (size_t)cap);
	retried = realloc(retried, (size_t)cap);
	bad = realloc(bad, (size_t)cap);
	if (!arrival || !ended || !dispatched || !latency_us || !retried || !bad)
		fail("realloc");
	for (long i = was; i < cap; i++) {
		ended[i] = -1;
		dispatched[i] = 0;
		latency_us[i] = UNANSWERED;
		retried[i] = bad[i] = 0;
	}
}

/* Whether request i is one the figures count: open loop, one that arrived
 * after the warm-up; closed loop, one answered (or failed) between the end
 * of the warm-up and the end of the run. */
static int counts(long i)
{
	if (!closed_clients)
		return i >= counted_from;
	return ended[i] >= warmup_ns && ended[i] <= span_ns;
}

/* -C: every connection not waiting for an answer sends its next request
 * now, until the run's end. */
static void closed_arrivals(int64_t now)
{
	while (now - start < span_ns && total - done < closed_clients) {
		grow(total + 1);
		arrival[total] = now - start;
		pending[pend_tail] = total++;
		pend_tail = (pend_tail + 1) % ring;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The p-th percentile in ms as JSON; null when it falls on a request left
 * unanswered (its latency is unknown, and longer than any measured). */
static const char *pct_ms(const uint32_t *sorted, long n, double p)
{
	static char out[8][32];
	static int next;
	char *s = out[next++ % 8];
	long i = (long)ceil(p / 100.0 * (double)n) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	if (n == 0 || sorted[i] == UNANSWERED)
		return "null";
	snprintf(s, sizeof out[0], "%.3f", sorted[i] / 1000.0);
	return s;
}

/* -T: "ARRIVAL LATENCY_US" per counted request, the arrival as Unix time
 * (the run's start on the wall clock plus its place in the schedule); an
 * unanswered or failed request's latency is -1. */
static void write_timeline(const char *file, double wall_start)
{
	FILE *out = fopen(file, "w");
	if (!out)
		fail(file);
	for (long i = 0; i < total; i++) {
		if (!counts(i))
			continue;
		long us = bad[i] || latency_us[i] == UNANSWERED ? -1L : (long)latency_us[i];
		fprintf(out, "%.6f %ld\n", wall_start + arrival[i] / 1e9, us);
	}
	if (fclose(out) != 0)
		fail(file);
}

static void usage(void)
{
	fprintf(stderr, "usage: openloop -p PORT -P PATH -r RATE -d SECONDS [-w WARMUP] [-c MAXCONN] "
			"[-s SEED] [-u] [-t DRAIN] [-T TIMELINE]\n"
			"       openloop -p PORT -P PATH -C CLIENTS -d SECONDS [-w WARMUP]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int port = 0, uniform = 0, opt;
	const char *path = "/", *timeline = NULL;
	double rate = 0, seconds = 0, warmup = 1, drain = 5;
	uint64_t seed = 1;
	max_conns = 256;
	while ((opt = getopt(argc, argv, "p:P:r:d:w:c:s:ut:T:C:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'r': rate = atof(optarg); break;
		case 'd': seconds = atof(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'c': max_conns = atoi(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'u': uniform = 1; break;
		case 't': drain = atof(optarg); break;
		case 'T': timeline = optarg; break;
		case 'C': closed_clients = atoi(optarg); break;
		default: usage();
		}
	}
	if (closed_clients < 0 || (closed_clients == 0 && rate <= 0))
		usage();
	if (closed_clients)
		max_conns = closed_clients;
	if (port <= 0 || port > 65535 || seconds <= 0 || warmup < 0 || max_conns < 1 || path[0] != '/')
		usage();
	signal(SIGPIPE, SIG_IGN);
	/* Wake at each arrival, not up to 50 us later (the default timer slack). */
	prctl(PR_SET_TIMERSLACK, 1UL);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	request_len = (size_t)snprintf(request, sizeof request,
				       "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: openloop\r\n\r\n", path, port);

	/* The schedule, fixed before the first request (open loop). */
	double span = warmup + seconds;
	span_ns = (int64_t)(span * 1e9);
	warmup_ns = (int64_t)(warmup * 1e9);
	grow(closed_clients ? 4096 : (long)(rate * span * 1.2) + 1000);
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	double t = 0;
	total = 0;
	counted_from = closed_clients ? 0 : -1;
	for (; !closed_clients;) {
		t += uniform ? 1.0 / rate : -log(1.0 - uniform01()) / rate;
		if (t >= span)
			break;
		grow(total + 1);
		if (counted_from < 0 && t >= warmup)
			counted_from = total;
		arrival[total++] = (int64_t)(t * 1e9);
	}
	if (!closed_clients && (total == 0 || counted_from < 0)) {
		fprintf(stderr, "openloop: no request falls after the warm-up\n");
		return 2;
	}
	/* Waiting requests: every one, open loop; at most one a connection, closed. */
	ring = closed_clients ? closed_clients + 1 : total;
	pending = malloc(sizeof *pending * (size_t)ring);
	conns = calloc((size_t)max_conns, sizeof *conns);
	idle_stack = malloc(sizeof *idle_stack * (size_t)max_conns);
	for (int i = 0; i < max_conns; i++)
		conns[i].fd = -1;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		fail("epoll_create1");

	struct epoll_event events[256];
	long next = 0;
	start = now_ns();
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	/* A closed loop ends with its run: what is still out is not waited for. */
	int64_t deadline = start + span_ns + (closed_clients ? 0 : (int64_t)(drain * 1e9));
	for (;;) {
		int64_t now = now_ns();
		if (closed_clients)
			closed_arrivals(now);
		while (!closed_clients && next < total && start + arrival[next] <= now) {
			pending[pend_tail] = next++;
			pend_tail = (pend_tail + 1) % ring;
		}
		dispatch();
		if (!closed_clients && next == total && done == total)
			break;
		if (now >= deadline)
			break;
		int64_t wait = !closed_clients && next < total ? start + arrival[next] - now : deadline - now;
		if (wait < 0)
			wait = 0;
		struct timespec ts = {.tv_sec = wait / 1000000000LL, .tv_nsec = wait % 1000000000LL};
		int n = epoll_pwait2(epfd, events, 256, &ts, NULL);
		if (n < 0 && errno == ENOSYS) {
			n = epoll_wait(epfd, events, 256, (int)(wait / 1000000));
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = &conns[events[i].data.u32];
			if (c->state == FREE)
				continue;
			uint32_t ev = events[i].events;
			if (c->state == CONNECTING) {
				int err = 0;
				socklen_t len = sizeof err;
				getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
				if (err || (ev & (EPOLLERR | EPOLLHUP))) {
					broken(c);
					continue;
				}
				if (!(ev & EPOLLOUT))
					continue;
				long req = c->req;
				c->state = IDLE;
				if (req >= 0) {
					send_on(c, req);
				} else {
					idle_stack[idle_top++] = (int)(c - conns);
					want_write(c, 0);
				}
				continue;
			}
			if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				readable(c);
			if (c->state == BUSY && (ev & EPOLLOUT) && c->sent < request_len)
				write_request(c);
		}
	}
	double elapsed = (double)(now_ns() - start) / 1e9;

	/* What counts: the requests that arrived after the warm-up (closed
	 * loop: those answered after it). */
	long counted = 0;
	long unanswered = 0, answered = 0;
	uint32_t *sorted = malloc(sizeof *sorted * (size_t)(total + 1));
	int64_t *lag = malloc(sizeof *lag * (size_t)(total + 1));
	long lags = 0;
	for (long i = 0; i < total; i++) {
		if (!counts(i))
			continue;
		/* A failed answer (a 502, a 503) is no answer: it counts as the longest. */
		sorted[counted++] = bad[i] ? UNANSWERED : latency_us[i];
		status_errors += bad[i];
		if (latency_us[i] == UNANSWERED)
			unanswered++;
		else
			answered++;
		if (dispatched[i])
			lag[lags++] = dispatched[i] - arrival[i];
	}
	if (timeline)
		write_timeline(timeline, (double)wall.tv_sec + wall.tv_nsec / 1e9);
	qsort(sorted, (size_t)counted, sizeof *sorted, cmp_u32);
	qsort(lag, (size_t)lags, sizeof *lag, cmp_i64);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	printf("{\"rate\": %.1f, \"arrivals\": \"%s\", \"seconds\": %.1f, \"warmup_s\": %.1f, "
	       "\"closed_loop_clients\": %d, \"in_flight_at_end\": %ld, "
	       "\"requests\": %ld, \"answered\": %ld, \"unanswered\": %ld, \"status_errors\": %ld, "
	       "\"connection_errors\": %ld, \"retried\": %ld, \"achieved_rps\": %.1f, "
	       "\"latency_ms\": {\"p50\": %s, \"p90\": %s, \"p99\": %s, \"p99.9\": %s, "
	       "\"p99.99\": %s, \"max\": %s}, "
	       "\"dispatch_lag_ms\": {\"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f}, "
	       "\"connections_opened\": %d, \"client_cpu_s\": %.3f, \"elapsed_s\": %.2f}\n",
	       rate, closed_clients ? "closed" : uniform ? "uniform" : "poisson", seconds, warmup, closed_clients,
	       closed_clients ? total - done : 0L, counted, answered, unanswered, status_errors,
	       conn_errors, retries, (double)answered / seconds,
	       pct_ms(sorted, counted, 50), pct_ms(sorted, counted, 90), pct_ms(sorted, counted, 99),
	       pct_ms(sorted, counted, 99.9), pct_ms(sorted, counted, 99.99), pct_ms(sorted, counted, 100),
	       lags ? lag[lags / 2] / 1e6 : 0, lags ? lag[(long)(lags * 0.99)] / 1e6 : 0,
	       lags ? lag[lags - 1] / 1e6 : 0, opened_total, cpu, elapsed);
	return 0;
}
