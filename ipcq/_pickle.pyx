# cython: language_level=3, boundscheck=False, wraparound=False
"""Pickle for the built-in objects that most messages are made of.

``pickle.dumps`` and ``pickle.loads`` build a pickler or an unpickler, a
memo and an output buffer on every call; for a message such as
``[1, 'A']`` that setup costs about as much as the kernel's send and
receive together.  This module reads and writes the same bytes for trees
of None, bool, int, float, str, list, tuple and dict objects (of exactly
those types) with none of that setup:

- fast_dumps() writes protocol 1 byte for byte as ``pickle.dumps(obj,
  1)`` does.  Anything else (another protocol, another type or a
  subclass, an int beyond 32 bits, a str with lone surrogates, a tuple
  that contains itself, a tree deeper than MAX_DEPTH or with more than
  MAX_MEMO containers and strings) goes to ``pickle.dumps`` whole.
- fast_loads() reads the opcodes that these objects take in protocols 0
  to 5 (int, float, str, bytes, containers, memo, frames).  At the first
  opcode it does not read, or at anything irregular, it hands the whole
  message to ``pickle.loads``, which returns the object or raises the
  error that pickle raises.

Neither runs any Python code of the objects: only exact built-in types
are touched, so nothing can change the tree while it is walked.
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE,
)
from cpython.dict cimport PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

import pickle


cdef extern from "Python.h":
    Py_ssize_t PyDict_GET_SIZE(object)
    const char *PyUnicode_AsUTF8AndSize(object, Py_ssize_t *)
    bint PyErr_ExceptionMatches(object)
    void PyErr_Clear()
    object PyUnicode_DecodeUTF8(const char *, Py_ssize_t, const char *)


cdef enum:
    # Deeper trees go to pickle, which recurses as far as Python allows.
    MAX_DEPTH = 100
    # Memo entries looked up by a linear scan, before a hash table.
    MEMO_INLINE = 16
    # More containers and strings than this go to pickle.
    MAX_MEMO = 1 << 20
    # pickle writes APPENDS and SETITEMS in batches of this many items.
    BATCH = 1000
    # Output bytes kept on the C stack before the first allocation.
    INLINE_OUT = 256
    # Open MARKs a message may have at once when read.
    MAX_MARKS = 64


cdef object _pickle_dumps = pickle.dumps
cdef object _pickle_loads = pickle.loads
cdef int HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL


# --- writing protocol 1 ---------------------------------------------------

cdef struct Entry:
    PyObject *key
    Py_ssize_t index


cdef struct Writer:
    char *data
    Py_ssize_t size
    Py_ssize_t capacity
    # The memo: what was written before and the index it was stored at,
    # so that an object met again is written as a reference (BINGET).
    # Objects are in the caller's tree, alive for the whole call.
    Py_ssize_t memo_count
    PyObject *memo_inline[MEMO_INLINE]
    Entry *table
    Py_ssize_t table_mask
    char inline_data[INLINE_OUT]


cdef int grow(Writer *w, Py_ssize_t n) except -1:
    cdef Py_ssize_t capacity = w.capacity * 2
    cdef char *data

    while capacity < w.size + n:
        capacity *= 2
    if w.data == w.inline_data:
        data = <char *>malloc(capacity)
        if data != NULL:
            memcpy(data, w.data, w.size)
    else:
        data = <char *>realloc(w.data, capacity)
    if data == NULL:
        raise MemoryError()
    w.data = data
    w.capacity = capacity
    return 0


cdef inline int put(Writer *w, const char *s, Py_ssize_t n) except -1:
    if w.size + n > w.capacity:
        grow(w, n)
    memcpy(w.data + w.size, s, n)
    w.size += n
    return 0


cdef inline int put_op(Writer *w, char op) except -1:
    if w.size >= w.capacity:
        grow(w, 1)
    w.data[w.size] = op
    w.size += 1
    return 0


cdef inline void put_le32(char *out, uint32_t value) noexcept:
    out[0] = <char>(value & 0xff)
    out[1] = <char>((value >> 8) & 0xff)
    out[2] = <char>((value >> 16) & 0xff)
    out[3] = <char>((value >> 24) & 0xff)


cdef int put_indexed(Writer *w, char short_op, char long_op,
                     Py_ssize_t index) except -1:
    """Write a memo opcode: the 1-byte form below 256, else the 4-byte."""
    cdef char op[5]

    if index < 256:
        op[0] = short_op
        op[1] = <char>index
        return put(w, op, 2)
    op[0] = long_op
    put_le32(op + 1, <uint32_t>index)
    return put(w, op, 5)


cdef inline Py_ssize_t slot_of(PyObject *obj, Py_ssize_t mask) noexcept:
    # Objects are 16-byte aligned: drop the low bits, spread the rest.
    return <Py_ssize_t>(((<uint64_t><size_t>obj >> 4)
                         * <uint64_t>0x9E3779B97F4A7C15) >> 32) & mask


cdef void table_insert(Entry *table, Py_ssize_t mask, PyObject *obj,
                       Py_ssize_t index) noexcept:
    cdef Py_ssize_t slot = slot_of(obj, mask)

    while table[slot].key != NULL:
        slot = (slot + 1) & mask
    table[slot].key = obj
    table[slot].index = index


cdef Py_ssize_t memo_find(Writer *w, PyObject *obj) noexcept:
    """The memo index of *obj*, or -1 if it was not written before."""
    cdef Py_ssize_t i, slot

    if w.table == NULL:
        for i in range(w.memo_count):
            if w.memo_inline[i] == obj:
                return i
        return -1
    slot = slot_of(obj, w.table_mask)
    while w.table[slot].key != NULL:
        if w.table[slot].key == obj:
            return w.table[slot].index
        slot = (slot + 1) & w.table_mask
    return -1


cdef int rehash(Writer *w, Py_ssize_t size) except -1:
    cdef Entry *table = <Entry *>calloc(size, sizeof(Entry))
    cdef Py_ssize_t i

    if table == NULL:
        raise MemoryError()
    if w.table == NULL:
        for i in range(w.memo_count):
            table_insert(table, size - 1, w.memo_inline[i], i)
    else:
        for i in range(w.table_mask + 1):
            if w.table[i].key != NULL:
                table_insert(table, size - 1, w.table[i].key,
                             w.table[i].index)
        free(w.table)
    w.table = table
    w.table_mask = size - 1
    return 0


cdef int memo_put(Writer *w, object obj) except -1:
    """Remember *obj* and write BINPUT; 1 if the memo is full."""
    cdef Py_ssize_t index = w.memo_count

    if index >= MAX_MEMO:
        return 1
    if w.table == NULL and index < MEMO_INLINE:
        w.memo_inline[index] = <PyObject *>obj
    else:
        # Keep the table at most half full.
        if w.table == NULL or 2 * (index + 1) > w.table_mask + 1:
            rehash(w, 4 * MEMO_INLINE if w.table == NULL
                   else 2 * (w.table_mask + 1))
        table_insert(w.table, w.table_mask, <PyObject *>obj, index)
    w.memo_count += 1
    return put_indexed(w, b'q', b'r', index)


cdef int save_int(Writer *w, object obj) except -1:
    cdef int overflow
    cdef long value = PyLong_AsLongAndOverflow(obj, &overflow)
    cdef char op[5]

    # Beyond 32 bits protocol 1 writes the decimal text: left to pickle.
    if overflow or value > 0x7fffffff or value < -0x80000000:
        return 1
    if 0 <= value <= 0xff:
        op[0] = b'K'
        op[1] = <char>value
        return put(w, op, 2)
    if 0 <= value <= 0xffff:
        op[0] = b'M'
        op[1] = <char>(value & 0xff)
        op[2] = <char>(value >> 8)
        return put(w, op, 3)
    op[0] = b'J'
    put_le32(op + 1, <uint32_t><int32_t>value)
    return put(w, op, 5)


cdef int save_float(Writer *w, object obj) except -1:
    # BINFLOAT: the IEEE 754 double, big-endian.
    cdef double value = PyFloat_AS_DOUBLE(obj)
    cdef uint64_t bits
    cdef char op[9]
    cdef int i

    memcpy(&bits, &value, 8)
    op[0] = b'G'
    for i in range(8):
        op[1 + i] = <char>((bits >> (56 - 8 * i)) & 0xff)
    return put(w, op, 9)


cdef int save_str(Writer *w, object obj) except -1:
    cdef const char *utf8
    cdef Py_ssize_t size
    cdef char op[5]

    # XXX: for a str that is not ASCII, CPython keeps the UTF-8 copy that
    # PyUnicode_AsUTF8AndSize() makes with the str until it is freed:
    # the str's size once more, in exchange for no temporary bytes.
    utf8 = PyUnicode_AsUTF8AndSize(obj, &size)
    if utf8 == NULL:
        if not PyErr_ExceptionMatches(UnicodeEncodeError):
            return -1
        # Lone surrogates: pickle writes them with "surrogatepass".
        PyErr_Clear()
        return 1
    if size > <Py_ssize_t>0xffffffff:
        return 1
    op[0] = b'X'
    put_le32(op + 1, <uint32_t>size)
    put(w, op, 5)
    put(w, utf8, size)
    return memo_put(w, obj)


cdef int save(Writer *w, object obj, int depth) except -1:
    """Write *obj*: 0 when written, 1 when pickle must do it."""
    cdef type kind = type(obj)
    cdef Py_ssize_t index

    if obj is None:
        return put_op(w, b'N')
    if obj is True:
        return put(w, b'I01\n', 4)
    if obj is False:
        return put(w, b'I00\n', 4)
    if kind is int:
        return save_int(w, obj)
    if kind is float:
        return save_float(w, obj)

    # As in pickle, only these are looked up in (and added to) the memo.
    index = memo_find(w, <PyObject *>obj)
    if index >= 0:
        return put_indexed(w, b'h', b'j', index)
    if kind is str:
        return save_str(w, obj)
    if depth >= MAX_DEPTH:
        return 1
    if kind is list:
        return save_list(w, obj, depth + 1)
    if kind is dict:
        return save_dict(w, obj, depth + 1)
    if kind is tuple:
        return save_tuple(w, obj, depth + 1)
    return 1


cdef int save_list(Writer *w, list obj, int depth) except -1:
    cdef Py_ssize_t i = 0, batch

    put_op(w, b']')
    if memo_put(w, obj):
        return 1
    if PyList_GET_SIZE(obj) == 1:
        if save(w, <object>PyList_GET_ITEM(obj, 0), depth):
            return 1
        return put_op(w, b'a')
    while i < PyList_GET_SIZE(obj):
        put_op(w, b'(')
        batch = 0
        while i < PyList_GET_SIZE(obj) and batch < BATCH:
            if save(w, <object>PyList_GET_ITEM(obj, i), depth):
                return 1
            i += 1
            batch += 1
        put_op(w, b'e')
    return 0


cdef int save_dict(Writer *w, dict obj, int depth) except -1:
    cdef Py_ssize_t position = 0, batch
    cdef PyObject *key
    cdef PyObject *value

    put_op(w, b'}')
    if memo_put(w, obj):
        return 1
    if PyDict_GET_SIZE(obj) == 0:
        return 0
    if PyDict_GET_SIZE(obj) == 1:
        PyDict_Next(obj, &position, &key, &value)
        if save(w, <object>key, depth) or save(w, <object>value, depth):
            return 1
        return put_op(w, b's')
    # As pickle does, a size that is a multiple of BATCH ends with an
    # empty MARK ... SETITEMS.
    batch = BATCH
    while batch == BATCH:
        put_op(w, b'(')
        batch = 0
        while batch < BATCH and PyDict_Next(obj, &position, &key, &value):
            if save(w, <object>key, depth) or save(w, <object>value, depth):
                return 1
            batch += 1
        put_op(w, b'u')
    return 0


cdef int save_tuple(Writer *w, tuple obj, int depth) except -1:
    cdef Py_ssize_t i

    if PyTuple_GET_SIZE(obj) == 0:
        # Not memoized: every empty tuple is the same object anyway.
        return put_op(w, b')')
    put_op(w, b'(')
    for i in range(PyTuple_GET_SIZE(obj)):
        if save(w, <object>PyTuple_GET_ITEM(obj, i), depth):
            return 1
    if memo_find(w, <PyObject *>obj) >= 0:
        # The tuple is inside itself, through a list or dict: pickle
        # writes that with POP_MARK and a reference.
        return 1
    put_op(w, b't')
    return memo_put(w, obj)


cdef object dumps1(object obj):
    """``pickle.dumps(obj, 1)``, the same bytes, without a pickler."""
    cdef Writer w
    cdef int status

    w.data = w.inline_data
    w.size = 0
    w.capacity = INLINE_OUT
    w.memo_count = 0
    w.table = NULL
    try:
        status = save(&w, obj, 0)
        if status == 0:
            put_op(&w, b'.')
            return PyBytes_FromStringAndSize(w.data, w.size)
    finally:
        if w.data != w.inline_data:
            free(w.data)
        free(w.table)
    return _pickle_dumps(obj, 1)


cdef object fast_dumps(object obj, object protocol):
    """``pickle.dumps(obj, protocol)``, with protocol 1 written here."""
    if type(protocol) is int and protocol == 1:
        return dumps1(obj)
    return _pickle_dumps(obj, protocol)


# --- reading ----------------------------------------------------------------

cdef extern from "Python.h":
    # The reader keeps objects in C arrays: these return new references
    # (NULL on error) and take borrowed ones, with no counting by Cython.
    PyObject *new_int "PyLong_FromLong"(long)
    PyObject *new_float "PyFloat_FromDouble"(double)
    PyObject *new_str "PyUnicode_DecodeUTF8"(const char *, Py_ssize_t,
                                             const char *)
    PyObject *new_bytes "PyBytes_FromStringAndSize"(const char *,
                                                    Py_ssize_t)
    PyObject *new_list "PyList_New"(Py_ssize_t)
    PyObject *new_dict "PyDict_New"()
    PyObject *new_tuple "PyTuple_New"(Py_ssize_t)
    void tuple_set "PyTuple_SET_ITEM"(PyObject *, Py_ssize_t, PyObject *)
    int list_append "PyList_Append"(PyObject *, PyObject *)
    int dict_set "PyDict_SetItem"(PyObject *, PyObject *, PyObject *)
    bint is_list "PyList_CheckExact"(PyObject *)
    bint is_dict "PyDict_CheckExact"(PyObject *)
    void incref "Py_INCREF"(PyObject *)
    void decref "Py_DECREF"(PyObject *)
    PyObject *py_none "Py_None"
    PyObject *py_true "Py_True"
    PyObject *py_false "Py_False"


cdef enum:
    # Stack and memo entries kept in the reader before an allocation.
    READER_INLINE = 32


cdef struct Reader:
    # The unpickler's stack and memo, each holding references.
    PyObject **stack
    Py_ssize_t size
    Py_ssize_t capacity
    PyObject **memo
    Py_ssize_t memo_size
    Py_ssize_t memo_capacity
    # MARK: where the stack stood at each open MARK; nothing below the
    # last one (the fence) may be taken until it is closed.
    Py_ssize_t marks[MAX_MARKS]
    Py_ssize_t nmarks
    Py_ssize_t fence
    PyObject *stack_inline[READER_INLINE]
    PyObject *memo_inline[READER_INLINE]


cdef int grow_array(PyObject ***array, Py_ssize_t *capacity,
                    PyObject **inline_array) noexcept:
    cdef Py_ssize_t size = 2 * capacity[0]
    cdef PyObject **grown

    if array[0] == inline_array:
        grown = <PyObject **>malloc(size * sizeof(PyObject *))
        if grown != NULL:
            memcpy(grown, array[0], capacity[0] * sizeof(PyObject *))
    else:
        grown = <PyObject **>realloc(array[0], size * sizeof(PyObject *))
    if grown == NULL:
        return -1
    array[0] = grown
    capacity[0] = size
    return 0


cdef inline int push(Reader *r, PyObject *obj) noexcept:
    """Put a new reference on the stack: -1 if it is NULL (an error)."""
    if obj == NULL:
        return -1
    if r.size == r.capacity and grow_array(&r.stack, &r.capacity,
                                           r.stack_inline) < 0:
        decref(obj)
        return -1
    r.stack[r.size] = obj
    r.size += 1
    return 0


cdef inline int push_borrowed(Reader *r, PyObject *obj) noexcept:
    incref(obj)
    return push(r, obj)


cdef int pop_tuple(Reader *r, Py_ssize_t start) noexcept:
    """Replace the items from *start* on with a tuple of them."""
    cdef Py_ssize_t i
    cdef PyObject *result = new_tuple(r.size - start)

    if result == NULL:
        return -1
    for i in range(r.size - start):
        # The tuple takes over the stack's references.
        tuple_set(result, i, r.stack[start + i])
    r.size = start
    return push(r, result)


cdef void drop(Reader *r, Py_ssize_t start) noexcept:
    while r.size > start:
        r.size -= 1
        decref(r.stack[r.size])


cdef void release(Reader *r) noexcept:
    drop(r, 0)
    while r.memo_size:
        r.memo_size -= 1
        decref(r.memo[r.memo_size])
    if r.stack != r.stack_inline:
        free(r.stack)
    if r.memo != r.memo_inline:
        free(r.memo)


cdef inline uint32_t le32(const unsigned char *p) noexcept:
    return (p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
            | (<uint32_t>p[3] << 24))


cdef PyObject *read(Reader *r, const unsigned char *p,
                    Py_ssize_t n) noexcept:
    """The object the pickle at *p* holds (a new reference), or NULL when
    it is not one this reader reads or an error occurred."""
    cdef const unsigned char *end = p + n
    cdef Py_ssize_t size, start, i
    cdef PyObject *result
    cdef PyObject *container
    cdef unsigned char op
    cdef uint64_t bits
    cdef double number

    while p < end:
        op = p[0]
        p += 1
        size = end - p
        if op == b'K':
            if size < 1 or push(r, new_int(p[0])):
                return NULL
            p += 1
        elif op == b'X' or op == 0x8c:
            # BINUNICODE, SHORT_BINUNICODE: UTF-8 with surrogatepass.
            if op == b'X':
                if size < 4 or le32(p) > <uint64_t>(size - 4):
                    return NULL
                start = le32(p)
                p += 4
            else:
                if size < 1 or p[0] > size - 1:
                    return NULL
                start = p[0]
                p += 1
            if push(r, new_str(<const char *>p, start, "surrogatepass")):
                return NULL
            p += start
        elif op == b'q' or op == b'r' or op == 0x94:
            # BINPUT, LONG_BINPUT, MEMOIZE: only to the next free index,
            # as pickle writes them.
            if r.size <= r.fence:
                return NULL
            if op == 0x94:
                i = r.memo_size
            elif op == b'q':
                if size < 1:
                    return NULL
                i = p[0]
                p += 1
            else:
                if size < 4:
                    return NULL
                i = le32(p)
                p += 4
            if i != r.memo_size:
                return NULL
            if r.memo_size == r.memo_capacity and grow_array(
                    &r.memo, &r.memo_capacity, r.memo_inline) < 0:
                return NULL
            incref(r.stack[r.size - 1])
            r.memo[r.memo_size] = r.stack[r.size - 1]
            r.memo_size += 1
        elif op == b'h' or op == b'j':
            # BINGET, LONG_BINGET.
            if op == b'h':
                if size < 1:
                    return NULL
                i = p[0]
                p += 1
            else:
                if size < 4:
                    return NULL
                i = le32(p)
                p += 4
            if i >= r.memo_size or push_borrowed(r, r.memo[i]):
                return NULL
        elif op == b'(':
            if r.nmarks == MAX_MARKS:
                return NULL
            r.marks[r.nmarks] = r.fence
            r.nmarks += 1
            r.fence = r.size
        elif op == b']':
            if push(r, new_list(0)):
                return NULL
        elif op == b'}':
            if push(r, new_dict()):
                return NULL
        elif op == b')':
            if push(r, new_tuple(0)):
                return NULL
        elif op == b'N':
            if push_borrowed(r, py_none):
                return NULL
        elif op == 0x88 or op == 0x89:
            # NEWTRUE, NEWFALSE.
            if push_borrowed(r, py_true if op == 0x88 else py_false):
                return NULL
        elif op == b'I':
            # INT: only the forms that mean True and False.
            if size < 3 or p[0] != b'0' or p[2] != b'\n' or (
                    p[1] != b'0' and p[1] != b'1'):
                return NULL
            if push_borrowed(r, py_true if p[1] == b'1' else py_false):
                return NULL
            p += 3
        elif op == b'M':
            if size < 2 or push(r, new_int(p[0] | (p[1] << 8))):
                return NULL
            p += 2
        elif op == b'J':
            if size < 4 or push(r, new_int(<int32_t>le32(p))):
                return NULL
            p += 4
        elif op == b'G':
            # BINFLOAT: an IEEE 754 double, big-endian.
            if size < 8:
                return NULL
            bits = 0
            for i in range(8):
                bits = (bits << 8) | p[i]
            memcpy(&number, &bits, 8)
            if push(r, new_float(number)):
                return NULL
            p += 8
        elif op == b'a':
            # APPEND: the top item to the list under it.
            if r.size - 2 < r.fence or not is_list(r.stack[r.size - 2]):
                return NULL
            if list_append(r.stack[r.size - 2], r.stack[r.size - 1]):
                return NULL
            drop(r, r.size - 1)
        elif op == b's':
            # SETITEM: the top two items to the dict under them.
            if r.size - 3 < r.fence or not is_dict(r.stack[r.size - 3]):
                return NULL
            if dict_set(r.stack[r.size - 3], r.stack[r.size - 2],
                        r.stack[r.size - 1]):
                return NULL
            drop(r, r.size - 2)
        elif op == b'e' or op == b'u' or op == b't':
            # APPENDS, SETITEMS, TUPLE: the items above the last MARK.
            if r.nmarks == 0:
                return NULL
            start = r.fence
            r.nmarks -= 1
            r.fence = r.marks[r.nmarks]
            if op == b't':
                if pop_tuple(r, start):
                    return NULL
                continue
            if start - 1 < r.fence:
                return NULL
            container = r.stack[start - 1]
            if op == b'e':
                if not is_list(container):
                    return NULL
                for i in range(start, r.size):
                    if list_append(container, r.stack[i]):
                        return NULL
            else:
                if not is_dict(container) or (r.size - start) % 2:
                    return NULL
                for i in range(start, r.size, 2):
                    if dict_set(container, r.stack[i], r.stack[i + 1]):
                        return NULL
            drop(r, start)
        elif 0x85 <= op <= 0x87:
            # TUPLE1, TUPLE2, TUPLE3.
            start = r.size - (op - 0x84)
            if start < r.fence or pop_tuple(r, start):
                return NULL
        elif op == b'C' or op == b'B':
            # SHORT_BINBYTES, BINBYTES.
            if op == b'B':
                if size < 4 or le32(p) > <uint64_t>(size - 4):
                    return NULL
                start = le32(p)
                p += 4
            else:
                if size < 1 or p[0] > size - 1:
                    return NULL
                start = p[0]
                p += 1
            if push(r, new_bytes(<const char *>p, start)):
                return NULL
            p += start
        elif op == 0x80:
            # PROTO: any that this Python reads.
            if size < 1 or p[0] > HIGHEST_PROTOCOL:
                return NULL
            p += 1
        elif op == 0x95:
            # FRAME: read as plain bytes when one frame holds the rest.
            if size < 8:
                return NULL
            bits = 0
            for i in range(8):
                bits |= <uint64_t>p[i] << (8 * i)
            if bits != <uint64_t>(size - 8):
                return NULL
            p += 8
        elif op == b'.':
            # STOP, at the end, with one object and no open MARK.
            if p != end or r.nmarks or r.size != 1:
                return NULL
            result = r.stack[0]
            r.size = 0
            return result
        else:
            return NULL
    return NULL


cdef object fast_loads(bytes data):
    """``pickle.loads(data)``, with the common opcodes read here."""
    cdef Reader r
    cdef PyObject *result
    cdef object obj

    r.stack = r.stack_inline
    r.size = 0
    r.capacity = READER_INLINE
    r.memo = r.memo_inline
    r.memo_size = 0
    r.memo_capacity = READER_INLINE
    r.nmarks = 0
    r.fence = 0
    result = read(&r, <const unsigned char *>PyBytes_AS_STRING(data),
                  PyBytes_GET_SIZE(data))
    release(&r)
    if result == NULL:
        # Not read here, or an error (a key that cannot be hashed,
        # invalid UTF-8...): pickle.loads gives the result or the error
        # that users expect from pickle.
        PyErr_Clear()
        return _pickle_loads(data)
    obj = <object>result
    decref(result)
    return obj


def dumps(obj, protocol=1):
    """Return ``pickle.dumps(obj, protocol)``; see the module's docstring."""
    return fast_dumps(obj, protocol)


def loads(data):
    """Return ``pickle.loads(data)``; see the module's docstring."""
    if type(data) is bytes:
        return fast_loads(data)
    return _pickle_loads(data)
