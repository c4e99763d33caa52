# Declarations from <mqueue.h>: only what ipcq uses.

from posix.time cimport timespec
from posix.types cimport mode_t


cdef extern from "<mqueue.h>" nogil:
    # On Linux an mqd_t is a file descriptor, so it can be polled.
    ctypedef int mqd_t

    struct mq_attr:
        long mq_flags
        long mq_maxmsg
        long mq_msgsize
        long mq_curmsgs

    mqd_t mq_open(const char *name, int oflag, mode_t mode, mq_attr *attr)
    int mq_close(mqd_t mqdes)
    int mq_unlink(const char *name)
    int mq_getattr(mqd_t mqdes, mq_attr *attr)


# The four calls that move messages go to the kernel through syscall(2)
# where the kernel's arguments are the C library's (64-bit Linux, whose
# timespec is the kernel's).  glibc's own mq_send(3) and the others are
# thread cancellation points: once a process has had a second thread,
# each call brackets its system call with two atomic updates of the
# thread's cancellation state, about 10 ns here, in every process that
# ever started a thread, for a feature (pthread_cancel) that Python never
# uses.  Elsewhere they are the C library's functions.
cdef extern from *:
    """
    #include <mqueue.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    #if defined(__linux__) && defined(__LP64__) \
        && defined(SYS_mq_timedsend) && defined(SYS_mq_timedreceive)
    static inline int ipcq_mq_timedsend(mqd_t q, const char *p, size_t n,
            unsigned int prio, const struct timespec *t) {
        return (int)syscall(SYS_mq_timedsend, q, p, n, prio, t);
    }
    static inline ssize_t ipcq_mq_timedreceive(mqd_t q, char *p, size_t n,
            unsigned int *prio, const struct timespec *t) {
        return (ssize_t)syscall(SYS_mq_timedreceive, q, p, n, prio, t);
    }
    #define ipcq_mq_send(q, p, n, prio) ipcq_mq_timedsend(q, p, n, prio, NULL)
    #define ipcq_mq_receive(q, p, n, prio) \
        ipcq_mq_timedreceive(q, p, n, prio, NULL)
    #else
    #define ipcq_mq_timedsend mq_timedsend
    #define ipcq_mq_timedreceive mq_timedreceive
    #define ipcq_mq_send mq_send
    #define ipcq_mq_receive mq_receive
    #endif
    """
    ssize_t mq_receive "ipcq_mq_receive" (
        mqd_t mqdes, char *msg_ptr, size_t msg_len,
        unsigned int *msg_prio) nogil
    int mq_send "ipcq_mq_send" (
        mqd_t mqdes, const char *msg_ptr, size_t msg_len,
        unsigned int msg_prio) nogil
    # glibc declares abs_timeout non-null: with no deadline, call mq_send
    # and mq_receive instead.
    int mq_timedsend "ipcq_mq_timedsend" (
        mqd_t mqdes, const char *msg_ptr, size_t msg_len,
        unsigned int msg_prio, const timespec *abs_timeout) nogil
    ssize_t mq_timedreceive "ipcq_mq_timedreceive" (
        mqd_t mqdes, char *msg_ptr, size_t msg_len,
        unsigned int *msg_prio, const timespec *abs_timeout) nogil
