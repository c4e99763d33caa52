# What ipcq._posix and ipcq._sysv share: the serializer codec, timeouts,
# signal handling and the translation of errno into exceptions.

from cpython.list cimport PyList_Append, PyList_GET_SIZE, PyList_New
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from posix.time cimport timespec


cdef extern from "Python.h":
    ctypedef struct PyListObject:
        Py_ssize_t allocated
    void list_set_item "PyList_SET_ITEM"(object, Py_ssize_t, object)
    void list_set_size "Py_SET_SIZE"(object, Py_ssize_t)
    Py_ssize_t ref_count "Py_REFCNT"(PyObject *)
    PyObject *tuple_get_raw "PyTuple_GET_ITEM"(PyObject *, Py_ssize_t)
    void tuple_set_raw "PyTuple_SET_ITEM"(PyObject *, Py_ssize_t, PyObject *)


cdef enum CodecKind:
    CODEC_RAW = 0
    CODEC_PICKLE = 1
    CODEC_OTHER = 2


cdef class Codec:
    cdef readonly object serializer
    cdef readonly int kind
    cdef readonly bint unpickles
    cdef int protocol
    cdef object dumps
    cdef object loads

    cdef object encode(self, object item, object pickle_protocol)
    cdef int get_buffer(self, object data, Py_buffer *view) except -1
    cdef object decode(self, bytes data, long tag, bint is_type)


cdef long to_long_slow(object value, str what) except? -1
cdef int get_writable_buffer(object buffer, Py_buffer *view) except -1
cdef double monotonic() noexcept nogil
cdef double deadline_for(object timeout) except? -2.0
cdef void fill_timespec(timespec *ts, double seconds) noexcept nogil
cdef unsigned long fork_generation() noexcept nogil
cdef bint alone_in_interpreter() noexcept
cdef void slice_deadline(timespec *ts, long nanoseconds) noexcept nogil
cdef int raise_errno(int err, str message) except -1
cdef int after_eintr(bint retry) except -1


cdef inline double wait_deadline(bint block,
                                 object timeout) except? -2.0:
    """The deadline of a call: 0 if it must not wait, -1.0 if forever."""
    if not block:
        return 0
    if timeout is None:
        return -1.0
    return deadline_for(timeout)


cdef inline long to_long(object value, str what) except? -1:
    """Convert an integer argument: an int at once, else to_long_slow()."""
    if type(value) is int:
        return value
    return to_long_slow(value, what)


cdef inline object encode_item(Codec codec, object item,
                               object pickle_protocol):
    """What to send for *item*: a raw item as it is, with no codec call."""
    if codec.kind == CODEC_RAW and pickle_protocol is None:
        return item
    return codec.encode(item, pickle_protocol)


cdef inline object decode_item(Codec codec, bytes data, long tag,
                               bint is_type):
    """The item that *data* encodes: raw data as it is, with no call."""
    if codec.kind == CODEC_RAW:
        return data
    return codec.decode(data, tag, is_type)


cdef inline list list_with_room(Py_ssize_t room):
    """An empty list that list_push() fills up to *room* items without
    a resize (PyList_Append() would first shrink it to the new size)."""
    cdef list items = PyList_New(room)

    # The slots beyond the size are not items: unset ones are allowed.
    list_set_size(items, 0)
    return items


cdef inline int list_push(list items, object item) except -1:
    """Append *item*: into a free slot inline, else by PyList_Append().

    The size grows only once the slot holds the item, so the list is
    whole whenever anything else can see it.
    """
    cdef Py_ssize_t size = PyList_GET_SIZE(items)

    if size < (<PyListObject *>items).allocated:
        # PyList_SET_ITEM takes over a reference of its own.
        Py_INCREF(item)
        list_set_item(items, size, item)
        list_set_size(items, size + 1)
        return 0
    return PyList_Append(items, item)


cdef inline object reuse_pair(PyObject *last, object first, object second):
    """*last*, a 2-tuple, refilled with (first, second) if only its holder
    references it (the caller dropped it since); else None.

    No one else can see the change, and the call allocates nothing: the
    trick of zip() and enumerate().  *last* is the holder's reference,
    taken without a count of its own.
    """
    cdef PyObject *old_first
    cdef PyObject *old_second

    if ref_count(last) != 1:
        return None
    old_first = tuple_get_raw(last, 0)
    old_second = tuple_get_raw(last, 1)
    Py_INCREF(first)
    Py_INCREF(second)
    tuple_set_raw(last, 0, <PyObject *>first)
    tuple_set_raw(last, 1, <PyObject *>second)
    Py_XDECREF(old_first)
    Py_XDECREF(old_second)
    return <object>last


cdef inline object pair_result(PyObject *last, object first, object second):
    """(first, second) in *last* as reuse_pair() refills it, else anew."""
    cdef object result = reuse_pair(last, first, second)

    if result is None:
        result = (first, second)
    return result
