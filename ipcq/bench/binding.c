/* The bare binding: the least a Python binding of a kernel queue can do.
 *
 * A CPython extension with one type, Channel, whose send(data) and recv()
 * make the system calls that ipcq makes for a raw put and get, and nothing
 * else: one positional argument, no keywords, no serializer, no priority
 * or type, no timeout, no close.  It tries without waiting and with the
 * GIL held first; a call that has to wait releases the GIL, and after a
 * receive (or send) that waited the next one goes straight to the waiting
 * call.  Its figures are the floor of any Python binding that releases
 * the GIL while it waits, measured in the same run as the C floor, so
 * that what the interpreter costs is told apart from what ipcq costs.
 *
 * The benchmark suite compiles it on the fly; it is not part of ipcq.
 * One thread per Channel: recv() fills the channel's own buffer.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    int sysv;      /* 0: POSIX descriptors; 1: a System V queue id */
    int fd;        /* POSIX: the blocking descriptor; System V: the id */
    int nb_fd;     /* POSIX: the same queue in O_NONBLOCK mode */
    Py_ssize_t cap; /* the largest message */
    char *buf;     /* POSIX: a message; System V: its type, then its text */
    int send_waited;
    int recv_waited;
} Channel;

#define HEADER ((Py_ssize_t)sizeof(long))

/* The calls themselves, as ipcq makes them on 64-bit Linux. */

static long
send_call(Channel *ch, int fd, const char *p, Py_ssize_t n, int wait)
{
    if (ch->sysv)
        return syscall(SYS_msgsnd, ch->fd, ch->buf, (size_t)n,
                       wait ? 0 : IPC_NOWAIT);
    return syscall(SYS_mq_timedsend, fd, p, (size_t)n, 0, NULL);
}

static long
recv_call(Channel *ch, int fd, int wait)
{
    if (ch->sysv)
        return syscall(SYS_msgrcv, ch->fd, ch->buf, (size_t)ch->cap, 0L,
                       wait ? 0 : IPC_NOWAIT);
    return syscall(SYS_mq_timedreceive, fd, ch->buf, (size_t)ch->cap, NULL,
                   NULL);
}

static int
would_wait(int sysv, int err)
{
    return sysv ? (err == EAGAIN || err == ENOMSG) : err == EAGAIN;
}

static PyObject *
Channel_send(Channel *ch, PyObject *data)
{
    Py_buffer view;
    long rc;
    int err;

    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len > ch->cap) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "message too long");
        return NULL;
    }
    if (ch->sysv) {
        /* msgsnd takes the type and the text in one buffer. */
        *(long *)ch->buf = 1;
        memcpy(ch->buf + HEADER, view.buf, (size_t)view.len);
    }
    if (!ch->send_waited) {
        rc = send_call(ch, ch->nb_fd, view.buf, view.len, 0);
        if (rc == 0) {
            PyBuffer_Release(&view);
            Py_RETURN_NONE;
        }
        if (!would_wait(ch->sysv, errno)) {
            PyBuffer_Release(&view);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = send_call(ch, ch->fd, view.buf, view.len, 1);
        err = errno;
        Py_END_ALLOW_THREADS
        if (rc == 0)
            break;
        if (err != EINTR || PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&view);
            errno = err;
            return err == EINTR ? NULL : PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    ch->send_waited = 1;
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
received(Channel *ch, long n)
{
    if (ch->sysv)
        return PyBytes_FromStringAndSize(ch->buf + HEADER, n);
    return PyBytes_FromStringAndSize(ch->buf, n);
}

static PyObject *
Channel_recv(Channel *ch, PyObject *unused)
{
    long n;
    int err;

    if (!ch->recv_waited) {
        n = recv_call(ch, ch->nb_fd, 0);
        if (n >= 0)
            return received(ch, n);
        if (!would_wait(ch->sysv, errno))
            return PyErr_SetFromErrno(PyExc_OSError);
    }
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        n = recv_call(ch, ch->fd, 1);
        err = errno;
        Py_END_ALLOW_THREADS
        if (n >= 0)
            break;
        if (err != EINTR || PyErr_CheckSignals() < 0) {
            errno = err;
            return err == EINTR ? NULL : PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    ch->recv_waited = 1;
    return received(ch, n);
}

static int
Channel_init(Channel *ch, PyObject *args, PyObject *kwds)
{
    int sysv, fd, nb_fd;
    Py_ssize_t cap;

    if (!PyArg_ParseTuple(args, "piin", &sysv, &fd, &nb_fd, &cap))
        return -1;
    if (cap <= 0) {
        PyErr_SetString(PyExc_ValueError, "the largest message must be > 0");
        return -1;
    }
    PyMem_Free(ch->buf);
    ch->buf = PyMem_Malloc((size_t)(cap + HEADER));
    if (ch->buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    ch->sysv = sysv;
    ch->fd = fd;
    ch->nb_fd = nb_fd;
    ch->cap = cap;
    ch->send_waited = ch->recv_waited = 0;
    return 0;
}

static void
Channel_dealloc(Channel *ch)
{
    PyMem_Free(ch->buf);
    Py_TYPE(ch)->tp_free((PyObject *)ch);
}

static PyMethodDef Channel_methods[] = {
    {"send", (PyCFunction)Channel_send, METH_O, "Send one bytes-like message."},
    {"recv", (PyCFunction)Channel_recv, METH_NOARGS, "Receive one message."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_binding.Channel",
    .tp_basicsize = sizeof(Channel),
    .tp_dealloc = (destructor)Channel_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Channel(sysv, fd_or_id, nonblocking_fd, largest_message)",
    .tp_methods = Channel_methods,
    .tp_init = (initproc)Channel_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_binding",
    "The bare binding of the ipcq benchmarks.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__binding(void)
{
    PyObject *m;

    if (PyType_Ready(&ChannelType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ChannelType);
    if (PyModule_AddObject(m, "Channel", (PyObject *)&ChannelType) < 0) {
        Py_DECREF(&ChannelType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
