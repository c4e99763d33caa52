# Pickle for trees of built-in objects, without the per-call setup of the
# pickle module; see _pickle.pyx.

cdef object fast_dumps(object obj, object protocol)
cdef object fast_loads(bytes data)
