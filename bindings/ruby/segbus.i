/* segbus.i: SWIG interface of the Ruby extension segbus_ext (module Segbus_ext): the C half of
 * `require "segbus"`; the analytics-ruby API is lib/segbus.rb on top. */
%module segbus_ext

%{
#include "sbrb.h"
%}

/* VALUE arguments and results pass through untouched. */
%include "sbrb.h"
