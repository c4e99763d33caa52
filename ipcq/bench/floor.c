/*
 * The C floor of the ipcq benchmarks: the same queue work as the Python
 * contenders, with no Python, so that each Python figure can be read as
 * a multiple of what the system calls alone cost.
 *
 * The queues are made and removed by the Python driver, which passes
 * their names (POSIX) or ids (System V); so a run killed half-way leaves
 * nothing behind.  Every run prints one JSON object on stdout; a failure
 * prints one line on stderr and exits with status 2.
 *
 *   floor pair     KIND QUEUE SIZE N WARM        ns per send+receive
 *   floor batch    KIND QUEUE SIZE BATCH N WARM  ns per message, BATCH
 *                                                sends then BATCH receives
 *   floor stream   KIND QUEUE SIZE N WARM CPU CPU
 *                  a producer and a consumer process; wall and CPU time
 *   floor pingpong KIND QUEUE QUEUE SIZE N WARM CPU CPU
 *                  round trips between two processes; each latency
 *
 * The two processes of stream and pingpong are pinned to the CPUs given
 * (-1: left to the scheduler), as the Python contenders' are.
 * KIND is "posix" (QUEUE a name such as /q) or "sysv" (QUEUE a msqid).
 * The calls are the plain blocking ones a C program would make:
 * mq_send(3) and mq_receive(3), msgsnd(2) and msgrcv(2) with no flags.
 * Build: cc -O2 -o floor floor.c -lrt
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct queue {
    int sysv;
    mqd_t mq;
    int id;
    char *out;          /* the message sent: mtype then text for System V */
    char *in;           /* the receive buffer */
    size_t size;        /* message size */
    size_t cap;         /* receive capacity: mq_msgsize or msgmax */
};

static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("floor: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static long parse_long(const char *text, const char *what)
{
    char *end;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno || *end || value < 0)
        die("%s must be a non-negative integer, not '%s'", what, text);
    return value;
}

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL
           + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

static size_t read_msgmax(void)
{
    FILE *f = fopen("/proc/sys/kernel/msgmax", "r");
    long value = 8192;

    if (f) {
        if (fscanf(f, "%ld", &value) != 1)
            value = 8192;
        fclose(f);
    }
    return (size_t)value;
}

/* Open the queue in this process, as each Python contender does. */
static void queue_open(struct queue *q, const char *kind, const char *spec,
                       size_t size)
{
    struct mq_attr attr;

    memset(q, 0, sizeof(*q));
    q->size = size;
    if (strcmp(kind, "posix") == 0) {
        q->mq = mq_open(spec, O_RDWR);
        if (q->mq == (mqd_t)-1)
            die("mq_open %s: %s", spec, strerror(errno));
        if (mq_getattr(q->mq, &attr) < 0)
            die("mq_getattr %s: %s", spec, strerror(errno));
        q->cap = attr.mq_msgsize;
        q->out = malloc(size ? size : 1);
        q->in = malloc(q->cap);
    } else if (strcmp(kind, "sysv") == 0) {
        q->sysv = 1;
        q->id = (int)parse_long(spec, "msqid");
        q->cap = read_msgmax();
        q->out = malloc(sizeof(long) + size);
        q->in = malloc(sizeof(long) + q->cap);
        if (q->out)
            *(long *)q->out = 1;
    } else {
        die("unknown queue kind '%s' (posix or sysv)", kind);
    }
    if (!q->out || !q->in)
        die("out of memory");
    memset(q->sysv ? q->out + sizeof(long) : q->out, 'Z', size);
}

static inline void queue_send(struct queue *q)
{
    if (q->sysv) {
        if (msgsnd(q->id, q->out, q->size, 0) < 0)
            die("msgsnd: %s", strerror(errno));
    } else if (mq_send(q->mq, q->out, q->size, 0) < 0) {
        die("mq_send: %s", strerror(errno));
    }
}

static inline void queue_receive(struct queue *q)
{
    unsigned int prio;

    if (q->sysv) {
        if (msgrcv(q->id, q->in, q->cap, 0, 0) < 0)
            die("msgrcv: %s", strerror(errno));
    } else if (mq_receive(q->mq, q->in, q->cap, &prio) < 0) {
        die("mq_receive: %s", strerror(errno));
    }
}

static void pair(struct queue *q, long n, long warm)
{
    long long start;

    for (long i = 0; i < warm; i++) {
        queue_send(q);
        queue_receive(q);
    }
    start = now_ns();
    for (long i = 0; i < n; i++) {
        queue_send(q);
        queue_receive(q);
    }
    printf("{\"ns_per_op\": %.3f}\n", (double)(now_ns() - start) / n);
}

static void batch(struct queue *q, long size, long n, long warm)
{
    long long start;

    for (long i = 0; i < warm; i++) {
        for (long j = 0; j < size; j++)
            queue_send(q);
        for (long j = 0; j < size; j++)
            queue_receive(q);
    }
    start = now_ns();
    for (long i = 0; i < n; i++) {
        for (long j = 0; j < size; j++)
            queue_send(q);
        for (long j = 0; j < size; j++)
            queue_receive(q);
    }
    printf("{\"ns_per_op\": %.3f}\n",
           (double)(now_ns() - start) / ((double)n * size));
}

/* One process of a two-process run, as the Python harness does it:
 * warm up together, say "ready", wait for "go", then the timed part. */
struct role {
    int ready_fd;
    int go_fd;
    int result_fd;
};

static void role_sync(struct role *r)
{
    char c = 'r';

    if (write(r->ready_fd, &c, 1) != 1 || read(r->go_fd, &c, 1) != 1)
        die("lost the driver process");
}

struct timing {
    long long t0, t1, cpu;
};

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t done = write(fd, p, len);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            die("write: %s", strerror(errno));
        }
        p += done;
        len -= done;
    }
}

static size_t read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t done = read(fd, p + got, len - got);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            break;
        got += done;
    }
    return got;
}

static void producer(struct queue *q, long n, long warm, struct role *r)
{
    struct timing t;
    long long cpu0;

    for (long i = 0; i < warm; i++)
        queue_send(q);
    role_sync(r);
    t.t0 = now_ns();
    cpu0 = cpu_ns();
    for (long i = 0; i < n; i++)
        queue_send(q);
    t.t1 = now_ns();
    t.cpu = cpu_ns() - cpu0;
    write_all(r->result_fd, &t, sizeof(t));
}

static void consumer(struct queue *q, long n, long warm, struct role *r)
{
    struct timing t;
    long long cpu0;

    for (long i = 0; i < warm; i++)
        queue_receive(q);
    role_sync(r);
    t.t0 = now_ns();
    cpu0 = cpu_ns();
    for (long i = 0; i < n; i++)
        queue_receive(q);
    t.t1 = now_ns();
    t.cpu = cpu_ns() - cpu0;
    write_all(r->result_fd, &t, sizeof(t));
}

static void client(struct queue *ping, struct queue *pong, long n,
                   long warm, struct role *r)
{
    long long *lat = malloc(sizeof(long long) * (n ? n : 1));
    long long start;

    if (!lat)
        die("out of memory");
    for (long i = 0; i < warm; i++) {
        queue_send(ping);
        queue_receive(pong);
    }
    role_sync(r);
    for (long i = 0; i < n; i++) {
        start = now_ns();
        queue_send(ping);
        queue_receive(pong);
        lat[i] = now_ns() - start;
    }
    write_all(r->result_fd, lat, sizeof(long long) * n);
}

static void server(struct queue *ping, struct queue *pong, long n,
                   long warm, struct role *r)
{
    /* The echo sends back a message of the same size it received. */
    for (long i = 0; i < warm; i++) {
        queue_receive(ping);
        queue_send(pong);
    }
    role_sync(r);
    for (long i = 0; i < n; i++) {
        queue_receive(ping);
        queue_send(pong);
    }
}

enum { PRODUCER, CONSUMER, CLIENT, SERVER };

struct child {
    pid_t pid;
    int ready, go, result;
};

static void pin(long cpu)
{
    cpu_set_t set;

    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        die("sched_setaffinity to CPU %ld: %s", cpu, strerror(errno));
}

static void start_child(struct child *c, int which, char **argv, long n,
                        long warm, long cpu)
{
    int ready[2], go[2], result[2];
    struct role r;
    struct queue a, b;
    long size;

    if (pipe(ready) < 0 || pipe(go) < 0 || pipe(result) < 0)
        die("pipe: %s", strerror(errno));
    c->pid = fork();
    if (c->pid < 0)
        die("fork: %s", strerror(errno));
    if (c->pid > 0) {
        close(ready[1]);
        close(go[0]);
        close(result[1]);
        c->ready = ready[0];
        c->go = go[1];
        c->result = result[0];
        return;
    }

    close(ready[0]);
    close(go[1]);
    close(result[0]);
    pin(cpu);
    r.ready_fd = ready[1];
    r.go_fd = go[0];
    r.result_fd = result[1];
    if (which == PRODUCER || which == CONSUMER) {
        /* argv: KIND QUEUE SIZE */
        size = parse_long(argv[2], "SIZE");
        queue_open(&a, argv[0], argv[1], size);
        if (which == PRODUCER)
            producer(&a, n, warm, &r);
        else
            consumer(&a, n, warm, &r);
    } else {
        /* argv: KIND PING PONG SIZE */
        size = parse_long(argv[3], "SIZE");
        queue_open(&a, argv[0], argv[1], size);
        queue_open(&b, argv[0], argv[2], size);
        if (which == CLIENT)
            client(&a, &b, n, warm, &r);
        else
            server(&a, &b, n, warm, &r);
    }
    _exit(0);
}

static void go_both(struct child *c)
{
    char x;

    for (int i = 0; i < 2; i++)
        if (read(c[i].ready, &x, 1) != 1)
            die("a child process failed before it was ready");
    for (int i = 0; i < 2; i++)
        write_all(c[i].go, "g", 1);
}

static void reap(struct child *c)
{
    int status;

    for (int i = 0; i < 2; i++) {
        if (waitpid(c[i].pid, &status, 0) < 0)
            die("waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            die("a child process failed (status %d)", status);
    }
}

static void stream(char **argv, long n, long warm, long *cpus)
{
    struct child c[2];
    struct timing t[2];

    start_child(&c[0], PRODUCER, argv, n, warm, cpus[0]);
    start_child(&c[1], CONSUMER, argv, n, warm, cpus[1]);
    go_both(c);
    for (int i = 0; i < 2; i++)
        if (read_all(c[i].result, &t[i], sizeof(t[i])) != sizeof(t[i]))
            die("a child process failed before it reported");
    reap(c);
    printf("{\"t0\": [%lld, %lld], \"t1\": [%lld, %lld], "
           "\"cpu_ns\": [%lld, %lld]}\n",
           t[0].t0, t[1].t0, t[0].t1, t[1].t1, t[0].cpu, t[1].cpu);
}

static void pingpong(char **argv, long n, long warm, long *cpus)
{
    struct child c[2];
    long long *lat = malloc(sizeof(long long) * (n ? n : 1));
    size_t want = sizeof(long long) * n;

    if (!lat)
        die("out of memory");
    start_child(&c[0], CLIENT, argv, n, warm, cpus[0]);
    start_child(&c[1], SERVER, argv, n, warm, cpus[1]);
    go_both(c);
    if (read_all(c[0].result, lat, want) != want)
        die("the client process failed before it reported");
    reap(c);
    fputs("{\"latencies_ns\": [", stdout);
    for (long i = 0; i < n; i++)
        printf(i ? ", %lld" : "%lld", lat[i]);
    fputs("]}\n", stdout);
}

static void usage(void)
{
    die("usage: floor pair|batch|stream|pingpong KIND QUEUE... "
        "(see the comment at the top of floor.c)");
}

static void parse_cpus(char **argv, long *cpus)
{
    for (int i = 0; i < 2; i++)
        cpus[i] = strcmp(argv[i], "-1") == 0 ? -1
                  : parse_long(argv[i], "CPU");
}

int main(int argc, char **argv)
{
    struct queue q;
    long cpus[2];

    if (argc < 2)
        usage();
    if (strcmp(argv[1], "pair") == 0 && argc == 7) {
        queue_open(&q, argv[2], argv[3], parse_long(argv[4], "SIZE"));
        pair(&q, parse_long(argv[5], "N"), parse_long(argv[6], "WARM"));
    } else if (strcmp(argv[1], "batch") == 0 && argc == 8) {
        queue_open(&q, argv[2], argv[3], parse_long(argv[4], "SIZE"));
        batch(&q, parse_long(argv[5], "BATCH"), parse_long(argv[6], "N"),
              parse_long(argv[7], "WARM"));
    } else if (strcmp(argv[1], "stream") == 0 && argc == 9) {
        parse_cpus(argv + 7, cpus);
        stream(argv + 2, parse_long(argv[5], "N"),
               parse_long(argv[6], "WARM"), cpus);
    } else if (strcmp(argv[1], "pingpong") == 0 && argc == 10) {
        parse_cpus(argv + 8, cpus);
        pingpong(argv + 2, parse_long(argv[6], "N"),
                 parse_long(argv[7], "WARM"), cpus);
    } else {
        usage();
    }
    return 0;
}
