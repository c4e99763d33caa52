/*
 * Stage 1 of the pipeline: a C program that measures (here, invents)
 * temperatures and sends them as typed messages on a POSIX queue.
 *
 *   producer QUEUE COUNT
 *
 * Each message is ipcq's typed-message format: the kind number as 4 bytes,
 * little-endian, then the payload.  Kind 1 is a struct reading, kind 2 the
 * end of the stream (a uint32_t, the number of readings sent).  The queue
 * must exist; run.py creates it.
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <mqueue.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 16 bytes, no padding: '@Iid' in Python's struct language. */
struct reading {
    uint32_t sensor;
    int32_t centi_celsius;  /* hundredths of a degree */
    double time;            /* seconds since the epoch */
};

static void send_typed(mqd_t q, uint32_t kind, const void *payload,
                       size_t len)
{
    unsigned char msg[64];
    struct timespec deadline;

    msg[0] = kind & 0xff;
    msg[1] = kind >> 8 & 0xff;
    msg[2] = kind >> 16 & 0xff;
    msg[3] = kind >> 24 & 0xff;
    memcpy(msg + 4, payload, len);

    /* Block while the queue is full, but not forever: the next stage may
     * have died. */
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    if (mq_timedsend(q, (const char *)msg, 4 + len, 0, &deadline) < 0) {
        perror("producer: mq_timedsend");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    mqd_t q;
    uint32_t count;
    struct timespec now;

    if (argc != 3) {
        fprintf(stderr, "usage: producer QUEUE COUNT\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    count = (uint32_t)strtoul(argv[2], NULL, 10);

    q = mq_open(argv[1], O_WRONLY);
    if (q == (mqd_t)-1) {
        perror("producer: mq_open");
        return 1;
    }

    clock_gettime(CLOCK_REALTIME, &now);
    for (uint32_t i = 0; i < count; i++) {
        struct reading r;

        memset(&r, 0, sizeof(r));
        r.sensor = 100 + i % 3;
        r.centi_celsius = 1850 + (int32_t)(i * 731 % 1500);
        r.time = now.tv_sec + now.tv_nsec * 1e-9 + i;
        send_typed(q, 1, &r, sizeof(r));
        printf("[C producer]      sensor %u: %d.%02d C\n", r.sensor,
               r.centi_celsius / 100, r.centi_celsius % 100);
    }
    send_typed(q, 2, &count, sizeof(count));
    printf("[C producer]      sent %u readings and the end marker\n", count);

    mq_close(q);
    return 0;
}
