# Declarations from <sys/ipc.h> and <sys/msg.h>: only what ipcq uses.

from posix.types cimport gid_t, pid_t, time_t, uid_t


cdef extern from "<sys/ipc.h>" nogil:
    ctypedef int key_t

    enum:
        IPC_CREAT
        IPC_EXCL
        IPC_NOWAIT
        IPC_PRIVATE
        IPC_RMID
        IPC_SET
        IPC_STAT

    struct ipc_perm:
        uid_t uid
        gid_t gid
        uid_t cuid
        gid_t cgid
        unsigned short mode

    key_t ftok(const char *pathname, int proj_id)


cdef extern from "<sys/msg.h>" nogil:
    ctypedef unsigned long msgqnum_t
    ctypedef unsigned long msglen_t

    struct msqid_ds:
        ipc_perm msg_perm
        time_t msg_stime
        time_t msg_rtime
        time_t msg_ctime
        # glibc spells the byte count with a leading double underscore.
        unsigned long msg_cbytes "__msg_cbytes"
        msgqnum_t msg_qnum
        msglen_t msg_qbytes
        pid_t msg_lspid
        pid_t msg_lrpid

    int msgget(key_t key, int msgflg)
    int msgctl(int msqid, int cmd, msqid_ds *buf)


# msgsnd and msgrcv go to the kernel through syscall(2) on 64-bit Linux,
# where they are system calls of their own: glibc's functions are thread
# cancellation points, which cost two atomic updates per call in any
# process that has ever had a second thread (see mqueue.pxd).
cdef extern from *:
    """
    #include <sys/msg.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    #if defined(__linux__) && defined(__LP64__) \
        && defined(SYS_msgsnd) && defined(SYS_msgrcv)
    static inline int ipcq_msgsnd(int id, const void *p, size_t n, int flg) {
        return (int)syscall(SYS_msgsnd, id, p, n, flg);
    }
    static inline ssize_t ipcq_msgrcv(int id, void *p, size_t n, long type,
            int flg) {
        return (ssize_t)syscall(SYS_msgrcv, id, p, n, type, flg);
    }
    #else
    #define ipcq_msgsnd msgsnd
    #define ipcq_msgrcv msgrcv
    #endif
    """
    int msgsnd "ipcq_msgsnd" (
        int msqid, const void *msgp, size_t msgsz, int msgflg) nogil
    ssize_t msgrcv "ipcq_msgrcv" (
        int msqid, void *msgp, size_t msgsz, long msgtyp, int msgflg) nogil
