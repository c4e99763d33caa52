# What ipcq._posix and ipcq._sysv share: the serializer codec, timeouts,
# signal handling and the translation of errno into exceptions.

from posix.time cimport timespec


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
