/* segbus.i: SWIG interface of the Python module segbus._segbus_ext: the C half of `import
 * segbus` (value converters and event calls, taking and returning Python objects as they are);
 * the analytics-python API itself is the pure-Python package segbus/ on top. */
%module(package="segbus") segbus_ext

%begin %{
#define PY_SSIZE_T_CLEAN
%}

%{
#include "sbpy_api.h"
%}

/* PyObject * arguments and results pass through untouched; a NULL result carries the Python
 * exception the C function set. */
%include "sbpy_api.h"
