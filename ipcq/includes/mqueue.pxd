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
    ssize_t mq_receive(mqd_t mqdes, char *msg_ptr, size_t msg_len,
                       unsigned int *msg_prio)
    int mq_send(mqd_t mqdes, const char *msg_ptr, size_t msg_len,
                unsigned int msg_prio)
    # glibc declares abs_timeout non-null: with no deadline, call mq_send
    # and mq_receive instead.
    int mq_timedsend(mqd_t mqdes, const char *msg_ptr, size_t msg_len,
                     unsigned int msg_prio, const timespec *abs_timeout)
    ssize_t mq_timedreceive(mqd_t mqdes, char *msg_ptr, size_t msg_len,
                            unsigned int *msg_prio,
                            const timespec *abs_timeout)
