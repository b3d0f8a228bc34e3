/* sbrb.h: the C functions that the SWIG interface (segbus.i) exposes as Segbus_ext.*, taking and
 * returning Ruby VALUEs as they are. Errors raise (ArgumentError as analytics-ruby's FieldParser,
 * TypeError for strict mode, SystemCallError/RuntimeError from libsegbus). */
#ifndef SEGBUS_BINDINGS_SBRB_H
#define SEGBUS_BINDINGS_SBRB_H

#include <ruby.h>

/* warn: a Proc called with an Array of "path: reason" texts after a call that dropped values. */
VALUE sbrb_setup(VALUE warn);
/* [String (msgpack) or nil, Array of warnings or nil]: value converted as an event field is. */
VALUE sbrb_pack(VALUE value, int strict);
/* Values dropped as unserialisable since the extension was loaded, over all clients. */
VALUE sbrb_dropped(void);
#ifdef SBB_HAVE_CLIENT
/* A native client (policy: enum segbus_full_policy; connect 0: only checks and encodes). */
VALUE sbrb_client_open(VALUE socket, VALUE write_key, int policy, long long block_ms,
                       int standalone, int strict, int connect);
VALUE sbrb_client_close(VALUE client);
/* segbus_flush() without the GVL; its return code. */
VALUE sbrb_flush(VALUE client, long long timeout_ms);
VALUE sbrb_stats(VALUE client);
/* One event (type: enum segbus_type; a: event/name/group_id/previous_id, b: category, body:
 * properties or traits). true, [false, reason] when the ring could not take it, nil when the
 * client is closed. */
VALUE sbrb_send(VALUE client, int type, int send, VALUE user_id, VALUE anonymous_id, VALUE a,
                VALUE b, VALUE body, VALUE context, VALUE timestamp, VALUE integrations,
                VALUE message_id);
#endif

#endif
