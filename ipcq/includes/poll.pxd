# Declarations from <poll.h>, <sys/eventfd.h> and <signal.h>: only what
# ipcq's waits use.  ppoll needs _GNU_SOURCE, which setup.py defines.

from posix.signal cimport sigset_t
from posix.time cimport timespec


cdef extern from "<poll.h>" nogil:
    enum:
        POLLIN
        POLLOUT
        POLLERR
        POLLHUP
        POLLNVAL

    ctypedef unsigned long nfds_t

    struct pollfd:
        int fd
        short events
        short revents

    int ppoll(pollfd *fds, nfds_t nfds, const timespec *tmo_p,
              const sigset_t *sigmask)


cdef extern from "<sys/eventfd.h>" nogil:
    enum:
        EFD_CLOEXEC
        EFD_NONBLOCK

    ctypedef unsigned long long eventfd_t

    int eventfd(unsigned int initval, int flags)
    int eventfd_read(int fd, eventfd_t *value)
    int eventfd_write(int fd, eventfd_t value)


cdef extern from "<signal.h>" nogil:
    int pthread_sigmask(int how, const sigset_t *set, sigset_t *oldset)
