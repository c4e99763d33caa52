/*
 * A C program on the other end of ipcq's queues, for the interoperability
 * tests.  It uses only libc: mq_open(3) and friends, msgget(2) and friends.
 *
 *   peer posix create NAME MAXMSG MSGSIZE MODE    (MODE in octal)
 *   peer posix attr NAME
 *   peer posix send NAME PRIO:DATA...
 *   peer posix recv NAME COUNT [FORMAT]
 *   peer posix unlink NAME
 *   peer sysv create KEY MODE
 *   peer sysv stat KEY
 *   peer sysv send KEY TYPE:DATA...
 *   peer sysv recv KEY COUNT MSGTYP [FORMAT]
 *   peer sysv rm KEY
 *   peer layout
 *
 * DATA is a message in hex, or one the peer builds itself:
 *   @json, @msgpack       a fixed document, hand-encoded
 *   @reading=F,D,S,T,V,R,L / @packed=...
 *                         a struct reading or struct packed_reading with
 *                         these field values (the label L in hex)
 *   @typed=KIND/DATA      the typed-message header (KIND as 4 bytes,
 *                         little-endian), then DATA
 *
 * recv prints a line per message: the priority or type, a space, then
 * by FORMAT: hex (the bytes, the default), reading or packed (the
 * struct's fields as name=value, and raw=HEX), typed (kind=N, then the
 * fields of a kind 1 reading or payload=HEX), json or msgpack ("match"
 * if the bytes are the peer's own encoding of the document, else
 * "mismatch HEX").  Each send or receive waits at most WAIT_SECONDS.
 * Any failure prints a message on stderr and exits with status 1.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <time.h>

#define WAIT_SECONDS 5

/* Fields of several types, so that the compiler inserts padding: after
 * flags, and at the end (40 bytes on x86-64).  Python: '@BhIqdf6s0q'. */
struct reading {
    uint8_t flags;
    int16_t delta;
    uint32_t sensor;
    int64_t stamp;
    double value;
    float ratio;
    char label[6];
};

/* The same fields without padding (33 bytes).  Python: '<BhIqdf6s'. */
struct __attribute__((packed)) packed_reading {
    uint8_t flags;
    int16_t delta;
    uint32_t sensor;
    int64_t stamp;
    double value;
    float ratio;
    char label[6];
};

/* {"id":7,"name":"grün","price":2.5,"tags":["a","b"],"ok":true,
 *  "none":null,"neg":-3,"big":300}, as orjson and msgpack-python write it. */
static const char json_doc[] =
    "{\"id\":7,\"name\":\"gr\303\274n\",\"price\":2.5,\"tags\":[\"a\",\"b\"],"
    "\"ok\":true,\"none\":null,\"neg\":-3,\"big\":300}";

static const unsigned char msgpack_doc[] = {
    0x88,                                           /* map of 8 pairs */
    0xa2, 'i', 'd', 0x07,                           /* "id": 7 */
    0xa4, 'n', 'a', 'm', 'e',                       /* "name": */
    0xa5, 'g', 'r', 0xc3, 0xbc, 'n',                /*   "grün" (UTF-8) */
    0xa5, 'p', 'r', 'i', 'c', 'e',                  /* "price": */
    0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0,             /*   float64 2.5 */
    0xa4, 't', 'a', 'g', 's',                       /* "tags": */
    0x92, 0xa1, 'a', 0xa1, 'b',                     /*   ["a", "b"] */
    0xa2, 'o', 'k', 0xc3,                           /* "ok": true */
    0xa4, 'n', 'o', 'n', 'e', 0xc0,                 /* "none": nil */
    0xa3, 'n', 'e', 'g', 0xfd,                      /* "neg": -3 */
    0xa3, 'b', 'i', 'g', 0xcd, 0x01, 0x2c,          /* "big": uint16 300 */
};

static void fail(const char *format, ...)
{
    va_list args;

    va_start(args, format);
    fputs("peer: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static void fail_errno(const char *what)
{
    fail("%s: %s", what, strerror(errno));
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        fail("out of memory");
    return p;
}

static long long parse_int(const char *text)
{
    char *end;
    long long value;

    errno = 0;
    value = strtoll(text, &end, 0);
    if (errno || end == text || *end)
        fail("not an integer: '%s'", text);
    return value;
}

static struct timespec deadline(void)
{
    struct timespec ts;

    /* mq_timedsend(3) and mq_timedreceive(3) take CLOCK_REALTIME. */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_SECONDS;
    return ts;
}

/* --- messages ----------------------------------------------------- */

struct buffer {
    unsigned char *data;
    size_t len;
};

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    fail("not a hex digit: '%c'", c);
    return 0;
}

static size_t from_hex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = strlen(hex);

    if (n % 2 || n / 2 > cap)
        fail("bad hex string of %zu digits", n);
    for (size_t i = 0; i < n / 2; i++)
        out[i] = hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]);
    return n / 2;
}

static void print_hex(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

/* Fill a struct reading from "flags,delta,sensor,stamp,value,ratio,label". */
static void parse_reading(const char *fields, struct reading *r)
{
    char *copy = strdup(fields);
    char *field[7];
    char *save = NULL;
    int n = 0;

    for (char *f = strtok_r(copy, ",", &save); f && n < 7;
         f = strtok_r(NULL, ",", &save))
        field[n++] = f;
    if (n != 7)
        fail("a reading has 7 fields: '%s'", fields);

    /* Padding bytes are zero, as Python's struct.pack writes them. */
    memset(r, 0, sizeof(*r));
    r->flags = (uint8_t)parse_int(field[0]);
    r->delta = (int16_t)parse_int(field[1]);
    r->sensor = (uint32_t)parse_int(field[2]);
    r->stamp = (int64_t)parse_int(field[3]);
    r->value = strtod(field[4], NULL);
    r->ratio = strtof(field[5], NULL);
    from_hex(field[6], (unsigned char *)r->label, sizeof(r->label));
    free(copy);
}

static struct buffer build(const char *token)
{
    struct buffer b;

    if (strncmp(token, "@typed=", 7) == 0) {
        char *end;
        unsigned long kind = strtoul(token + 7, &end, 0);
        struct buffer inner;

        if (*end != '/')
            fail("expected @typed=KIND/DATA: '%s'", token);
        inner = build(end + 1);
        b.len = 4 + inner.len;
        b.data = xmalloc(b.len);
        b.data[0] = kind & 0xff;
        b.data[1] = kind >> 8 & 0xff;
        b.data[2] = kind >> 16 & 0xff;
        b.data[3] = kind >> 24 & 0xff;
        memcpy(b.data + 4, inner.data, inner.len);
        free(inner.data);
    } else if (strncmp(token, "@reading=", 9) == 0) {
        struct reading r;

        parse_reading(token + 9, &r);
        b.len = sizeof(r);
        b.data = xmalloc(b.len);
        memcpy(b.data, &r, sizeof(r));
    } else if (strncmp(token, "@packed=", 8) == 0) {
        struct reading r;
        struct packed_reading p;

        parse_reading(token + 8, &r);
        p.flags = r.flags;
        p.delta = r.delta;
        p.sensor = r.sensor;
        p.stamp = r.stamp;
        p.value = r.value;
        p.ratio = r.ratio;
        memcpy(p.label, r.label, sizeof(p.label));
        b.len = sizeof(p);
        b.data = xmalloc(b.len);
        memcpy(b.data, &p, sizeof(p));
    } else if (strcmp(token, "@json") == 0) {
        b.len = strlen(json_doc);
        b.data = xmalloc(b.len);
        memcpy(b.data, json_doc, b.len);
    } else if (strcmp(token, "@msgpack") == 0) {
        b.len = sizeof(msgpack_doc);
        b.data = xmalloc(b.len);
        memcpy(b.data, msgpack_doc, b.len);
    } else {
        b.data = xmalloc(strlen(token) / 2);
        b.len = from_hex(token, b.data, strlen(token) / 2);
    }
    return b;
}

/* Split "TAG:DATA" into the tag and the built message. */
static long long split_item(const char *item, struct buffer *b)
{
    const char *colon = strchr(item, ':');
    char tag[32];

    if (colon == NULL || colon - item >= (long)sizeof(tag))
        fail("expected TAG:DATA, got '%s'", item);
    memcpy(tag, item, colon - item);
    tag[colon - item] = '\0';
    *b = build(colon + 1);
    return parse_int(tag);
}

static void print_reading_fields(const struct reading *r)
{
    printf("flags=%u delta=%d sensor=%u stamp=%lld value=%.17g ratio=%.9g "
           "label=", r->flags, r->delta, r->sensor, (long long)r->stamp,
           r->value, (double)r->ratio);
    print_hex((const unsigned char *)r->label, sizeof(r->label));
}

static void print_reading(const unsigned char *p, size_t n)
{
    struct reading r;

    if (n != sizeof(r)) {
        printf("badsize=%zu", n);
        return;
    }
    memcpy(&r, p, sizeof(r));
    print_reading_fields(&r);
}

static void print_packed(const unsigned char *p, size_t n)
{
    struct packed_reading pr;
    struct reading r;

    if (n != sizeof(pr)) {
        printf("badsize=%zu", n);
        return;
    }
    memcpy(&pr, p, sizeof(pr));
    r.flags = pr.flags;
    r.delta = pr.delta;
    r.sensor = pr.sensor;
    r.stamp = pr.stamp;
    r.value = pr.value;
    r.ratio = pr.ratio;
    memcpy(r.label, pr.label, sizeof(r.label));
    print_reading_fields(&r);
}

static void print_document(const unsigned char *p, size_t n,
                           const void *doc, size_t doc_len)
{
    if (n == doc_len && memcmp(p, doc, n) == 0) {
        printf("match");
        return;
    }
    printf("mismatch ");
    print_hex(p, n);
}

/* Print one received message; kind is the System V type, or 0 on POSIX,
 * where a typed message carries its kind in a header. */
static void print_message(long long tag, const unsigned char *p, size_t n,
                          const char *format, long kind)
{
    printf("%lld ", tag);
    if (strcmp(format, "hex") == 0) {
        print_hex(p, n);
    } else if (strcmp(format, "reading") == 0) {
        print_reading(p, n);
        printf(" raw=");
        print_hex(p, n);
    } else if (strcmp(format, "packed") == 0) {
        print_packed(p, n);
        printf(" raw=");
        print_hex(p, n);
    } else if (strcmp(format, "typed") == 0) {
        if (kind == 0) {
            if (n < 4) {
                printf("short=%zu\n", n);
                return;
            }
            kind = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
            p += 4;
            n -= 4;
        }
        printf("kind=%ld ", kind);
        if (kind == 1)
            print_reading(p, n);
        else {
            printf("payload=");
            print_hex(p, n);
        }
    } else if (strcmp(format, "json") == 0) {
        print_document(p, n, json_doc, strlen(json_doc));
    } else if (strcmp(format, "msgpack") == 0) {
        print_document(p, n, msgpack_doc, sizeof(msgpack_doc));
    } else {
        fail("unknown format '%s'", format);
    }
    putchar('\n');
}

/* --- POSIX -------------------------------------------------------- */

static int posix_main(int argc, char **argv)
{
    const char *cmd = argv[0];
    const char *name = argv[1];
    mqd_t q;
    struct mq_attr attr;

    if (strcmp(cmd, "create") == 0 && argc == 5) {
        attr.mq_flags = 0;
        attr.mq_maxmsg = parse_int(argv[2]);
        attr.mq_msgsize = parse_int(argv[3]);
        attr.mq_curmsgs = 0;
        /* The mode given is the mode wanted, whatever the umask. */
        umask(0);
        q = mq_open(name, O_RDWR | O_CREAT | O_EXCL,
                    (mode_t)strtol(argv[4], NULL, 8), &attr);
        if (q == (mqd_t)-1)
            fail_errno("mq_open");
        mq_getattr(q, &attr);
        printf("maxmsg=%ld msgsize=%ld\n", attr.mq_maxmsg, attr.mq_msgsize);
    } else if (strcmp(cmd, "attr") == 0 && argc == 2) {
        struct stat st;

        q = mq_open(name, O_RDONLY);
        if (q == (mqd_t)-1)
            fail_errno("mq_open");
        if (mq_getattr(q, &attr) < 0 || fstat(q, &st) < 0)
            fail_errno("mq_getattr");
        printf("maxmsg=%ld msgsize=%ld curmsgs=%ld mode=%o\n",
               attr.mq_maxmsg, attr.mq_msgsize, attr.mq_curmsgs,
               (unsigned)st.st_mode & 0777);
    } else if (strcmp(cmd, "send") == 0) {
        q = mq_open(name, O_WRONLY);
        if (q == (mqd_t)-1)
            fail_errno("mq_open");
        for (int i = 2; i < argc; i++) {
            struct buffer b;
            unsigned prio = (unsigned)split_item(argv[i], &b);
            struct timespec ts = deadline();

            if (mq_timedsend(q, (const char *)b.data, b.len, prio, &ts) < 0)
                fail_errno("mq_timedsend");
            free(b.data);
        }
    } else if (strcmp(cmd, "recv") == 0 && (argc == 3 || argc == 4)) {
        long long count = parse_int(argv[2]);
        const char *format = argc == 4 ? argv[3] : "hex";
        unsigned char *buf;

        q = mq_open(name, O_RDONLY);
        if (q == (mqd_t)-1)
            fail_errno("mq_open");
        /* The buffer must hold the queue's largest message (mq_msgsize),
         * which the queue's creator chose. */
        if (mq_getattr(q, &attr) < 0)
            fail_errno("mq_getattr");
        buf = xmalloc(attr.mq_msgsize);
        for (long long i = 0; i < count; i++) {
            unsigned prio;
            struct timespec ts = deadline();
            ssize_t n = mq_timedreceive(q, (char *)buf, attr.mq_msgsize,
                                        &prio, &ts);

            if (n < 0)
                fail_errno("mq_timedreceive");
            print_message(prio, buf, n, format, 0);
        }
        free(buf);
    } else if (strcmp(cmd, "unlink") == 0 && argc == 2) {
        if (mq_unlink(name) < 0)
            fail_errno("mq_unlink");
        return 0;
    } else {
        fail("bad posix command");
    }
    mq_close(q);
    return 0;
}

/* --- System V ----------------------------------------------------- */

struct message {
    long mtype;
    unsigned char mtext[];
};

static long read_msgmax(void)
{
    FILE *f = fopen("/proc/sys/kernel/msgmax", "r");
    long value = 8192;

    if (f) {
        if (fscanf(f, "%ld", &value) != 1)
            value = 8192;
        fclose(f);
    }
    return value;
}

static int open_key(const char *text)
{
    key_t key = (key_t)(uint32_t)parse_int(text);
    int id = msgget(key, 0);

    if (id < 0)
        fail_errno("msgget");
    return id;
}

static int expired(const struct timespec *end)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return now.tv_sec > end->tv_sec
        || (now.tv_sec == end->tv_sec && now.tv_nsec >= end->tv_nsec);
}

static void nap(void)
{
    struct timespec ms = {0, 1000000};

    nanosleep(&ms, NULL);
}

static int sysv_main(int argc, char **argv)
{
    const char *cmd = argv[0];

    if (strcmp(cmd, "create") == 0 && argc == 3) {
        key_t key = (key_t)(uint32_t)parse_int(argv[1]);
        int id = msgget(key, IPC_CREAT | IPC_EXCL | strtol(argv[2], NULL, 8));

        if (id < 0)
            fail_errno("msgget");
        printf("id=%d\n", id);
    } else if (strcmp(cmd, "stat") == 0 && argc == 2) {
        struct msqid_ds ds;

        if (msgctl(open_key(argv[1]), IPC_STAT, &ds) < 0)
            fail_errno("msgctl");
        printf("qbytes=%lu qnum=%lu mode=%o\n", (unsigned long)ds.msg_qbytes,
               (unsigned long)ds.msg_qnum, ds.msg_perm.mode & 0777);
    } else if (strcmp(cmd, "send") == 0) {
        int id = open_key(argv[1]);

        for (int i = 2; i < argc; i++) {
            struct buffer b;
            long mtype = (long)split_item(argv[i], &b);
            struct message *m = xmalloc(sizeof(*m) + b.len);
            struct timespec end = deadline();

            m->mtype = mtype;
            memcpy(m->mtext, b.data, b.len);
            /* msgsnd(2) has no timeout: poll with IPC_NOWAIT.  It is never
             * restarted after a signal handler (signal(7)). */
            while (msgsnd(id, m, b.len, IPC_NOWAIT) < 0) {
                if ((errno != EAGAIN && errno != EINTR) || expired(&end))
                    fail_errno("msgsnd");
                nap();
            }
            free(m);
            free(b.data);
        }
    } else if (strcmp(cmd, "recv") == 0 && (argc == 4 || argc == 5)) {
        int id = open_key(argv[1]);
        long long count = parse_int(argv[2]);
        long msgtyp = (long)parse_int(argv[3]);
        const char *format = argc == 5 ? argv[4] : "hex";
        long msgmax = read_msgmax();
        struct message *m = xmalloc(sizeof(*m) + msgmax);

        for (long long i = 0; i < count; i++) {
            struct timespec end = deadline();
            ssize_t n;

            while ((n = msgrcv(id, m, msgmax, msgtyp, IPC_NOWAIT)) < 0) {
                if ((errno != ENOMSG && errno != EINTR) || expired(&end))
                    fail_errno("msgrcv");
                nap();
            }
            print_message(m->mtype, m->mtext, n, format, m->mtype);
        }
        free(m);
    } else if (strcmp(cmd, "rm") == 0 && argc == 2) {
        if (msgctl(open_key(argv[1]), IPC_RMID, NULL) < 0)
            fail_errno("msgctl");
    } else {
        fail("bad sysv command");
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "layout") == 0) {
        printf("reading=%zu packed=%zu\n", sizeof(struct reading),
               sizeof(struct packed_reading));
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "posix") == 0)
        return posix_main(argc - 2, argv + 2);
    if (argc >= 4 && strcmp(argv[1], "sysv") == 0)
        return sysv_main(argc - 2, argv + 2);
    fail("usage: peer posix|sysv COMMAND ARGS... (see peer.c)");
    return 1;
}
